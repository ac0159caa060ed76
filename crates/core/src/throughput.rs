//! Timed workloads shared by the criterion benchmarks and `reusebench
//! bench`, which `scripts/compare_pytorch.py` runs beside the same workload
//! in PyTorch: a fixed batch already on the device, then forward,
//! cross-entropy, backward and an SGD-momentum update, repeated; or, for
//! inference, the forward pass alone in evaluation mode without autodiff
//! (what feature extraction and evaluation run), logits read back to the host.

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::loss::cross_entropy_with_logits;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::backbone::BackboneConfig;
use crate::model::{Classifier, linear_head};
use crate::train::{OptimConfig, Stage, Step, TrainHooks, one_hot};
use reusebench_data::{Augment, Normalization};

/// A ResNet-18 (CIFAR variant) classifier with 10 classes and a random
/// `[batch, 3, 32, 32]` batch with labels, on `device` (autodiff).
pub fn workload(width: usize, batch: usize, device: &Device) -> (Classifier, Tensor<4>, Tensor<2>) {
    let cfg = BackboneConfig {
        width,
        ..Default::default()
    };
    workload_of(&cfg, batch, device)
}

/// [`workload`] with the backbone `cfg` gives (a ViT for 32 px images, say).
pub fn workload_of(
    cfg: &BackboneConfig,
    batch: usize,
    device: &Device,
) -> (Classifier, Tensor<4>, Tensor<2>) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let backbone = cfg.build(&mut rng, device);
    let head = linear_head(&mut rng, cfg.feature_dim(), 10, device);
    let x: Vec<f32> = (0..batch * 3 * 32 * 32)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect();
    let labels: Vec<u32> = (0..batch).map(|_| rng.random_range(0..10)).collect();
    (
        Classifier::new(backbone, head),
        Tensor::from_data(TensorData::new(x, [batch, 3, 32, 32]), device),
        one_hot(&labels, 10, device),
    )
}

/// Runs `steps` SGD-momentum train steps on the fixed batch and returns the
/// model (so the caller can keep timing) and the seconds they took.
pub fn train_steps(
    model: Classifier,
    x: &Tensor<4>,
    y: &Tensor<2>,
    steps: usize,
) -> (Classifier, f64) {
    train_steps_with(model, x, y, steps, &mut crate::train::NoHooks)
}

/// [`train_steps`] with a method's extra loss terms (penalties, replay).
pub fn train_steps_with(
    mut model: Classifier,
    x: &Tensor<4>,
    y: &Tensor<2>,
    steps: usize,
    hooks: &mut dyn TrainHooks<Classifier>,
) -> (Classifier, f64) {
    let optim_config = OptimConfig::sgd(0.01);
    let mut optim = optim_config.optimizer();
    let [batch, ..] = x.dims();
    let stage = Stage {
        name: "bench".into(),
        epochs: 1,
        batch_size: batch,
        optim: &optim_config,
        augment: Augment::STANDARD,
        normalization: Normalization {
            mean: [0.5; 3],
            std: [0.25; 3],
        },
        num_classes: 10,
        seed: 0,
        curve: None,
    };
    let labels = vec![0u32; batch];
    let indices: Vec<usize> = (0..batch).collect();
    let start = Instant::now();
    let device = x.device();
    for _ in 0..steps {
        let (logits, extra_logits) = match hooks.extra_batch(&stage, &device) {
            None => (model.forward(x.clone()), None),
            Some(extra) => {
                let m = extra.dims()[0];
                let all = model.forward(Tensor::cat(vec![x.clone(), extra], 0));
                (
                    all.clone().narrow(0, 0, batch),
                    Some(all.narrow(0, batch, m)),
                )
            }
        };
        let mut loss = cross_entropy_with_logits(logits.clone(), y.clone());
        let view = Step {
            images: x,
            labels: &labels,
            indices: &indices,
            logits: &logits,
            extra_logits: extra_logits.as_ref(),
            stage: &stage,
        };
        if let Ok(Some(extra)) = hooks.extra_loss(&model, &view) {
            loss = loss + extra;
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.01, model, grads);
    }
    // Wait for the device (asynchronous backends) before reading the clock.
    let _ = model.head.bias.as_ref().map(|b| b.val().into_data());
    (model, start.elapsed().as_secs_f64())
}

/// Images per second of the train step after `warmup` untimed steps.
pub fn train_step_rate(
    cfg: &BackboneConfig,
    batch: usize,
    warmup: usize,
    steps: usize,
    device: &Device,
) -> f64 {
    let (model, x, y) = workload_of(cfg, batch, device);
    let (model, _) = train_steps(model, &x, &y, warmup);
    let (_, seconds) = train_steps(model, &x, &y, steps);
    (batch * steps) as f64 / seconds
}

/// Images per second of inference (evaluation mode, no autodiff graph,
/// logits copied to the host as `features::logits` does) after `warmup`
/// untimed passes.
pub fn inference_rate(
    cfg: &BackboneConfig,
    batch: usize,
    warmup: usize,
    passes: usize,
    device: &Device,
) -> f64 {
    let device = device.clone().without_autodiff();
    let (model, x, _) = workload_of(cfg, batch, &device);
    let pass = || {
        model
            .forward(x.clone())
            .into_data()
            .try_into_vec::<f32>()
            .expect("f32 logits")
    };
    for _ in 0..warmup {
        pass();
    }
    let start = Instant::now();
    for _ in 0..passes {
        pass();
    }
    (batch * passes) as f64 / start.elapsed().as_secs_f64()
}

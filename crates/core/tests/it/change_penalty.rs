//! Tuning while penalising change: θ′ starts at zero and leaves the outputs
//! as they were, the penalty's gradient is its analytic value, and a step
//! moves θ′ only.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::loss::cross_entropy_with_logits;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reusebench_core::DeviceSpec;
use reusebench_core::model::Classifier;
use reusebench_core::penalties::{ChangeNorm, change_penalty, changes, with_change};
use reusebench_core::train::one_hot;

fn tiny(device: &Device) -> Classifier {
    reusebench_core::testing::tiny_classifier(2, 3, 5, device)
}

fn batch(device: &Device) -> Tensor<4> {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let v: Vec<f32> = (0..4 * 3 * 8 * 8)
        .map(|_| rng.random::<f32>() - 0.5)
        .collect();
    Tensor::from_data(TensorData::new(v, [4, 3, 8, 8]), device)
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

/// The θ′ parameters themselves (leaves of the autodiff graph) and the
/// stored bases, by visiting the module.
#[derive(Default)]
struct Params {
    depth: usize,
    deltas: Vec<(ParamId, Vec<f32>)>,
    bases: Vec<Vec<f32>>,
}

impl ModuleVisitor for Params {
    fn enter_module(&mut self, _: &str, container: &str) {
        self.depth += (container == "Reparameterization") as usize;
    }
    fn exit_module(&mut self, _: &str, container: &str) {
        self.depth -= (container == "Reparameterization") as usize;
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.depth > 0 {
            self.deltas.push((param.id, host(param.val())));
        } else {
            self.bases.push(host(param.base()));
        }
    }
}

fn params<M: Module>(m: &M) -> Params {
    let mut p = Params::default();
    m.visit(&mut p);
    p
}

#[test]
fn a_zero_change_leaves_the_outputs_bit_identical() {
    let dev = DeviceSpec::for_tests().autodiff();
    let model = tiny(&dev);
    // Counted first: batch norm's γ and β are initialised lazily, and a
    // clone's freeze() reaches that shared state (burn 0.22).
    let trainable = reusebench_core::penalties::snapshot(&model).len();
    assert_eq!(
        trainable, 62,
        "20 convolutions, 20 batch norms x 2, the head's 2"
    );
    let x = batch(&dev);
    // Frozen: batch norm in evaluation mode, as the wrapped model is.
    let before = host(model.clone().freeze().forward(x.clone()));
    let wrapped = with_change(model.clone(), &[]);
    let after = host(wrapped.forward(x));
    assert_eq!(before, after, "θ + 0 is θ, bit for bit");
    // One θ′ per parameter tensor, each as many values as its parameter.
    let p = params(&wrapped);
    assert_eq!(p.deltas.len(), trainable, "one θ′ per trainable tensor");
    assert!(p.deltas.iter().all(|(_, d)| d.iter().all(|&v| v == 0.0)));
    // A subset: only the head's parameters get a θ′.
    let head_only = with_change(model, &["head".to_string()]);
    assert_eq!(changes(&head_only).len(), 2, "weight and bias");
}

#[test]
fn a_step_moves_only_the_change_and_the_penalty_gradient_is_analytic() {
    let dev = DeviceSpec::for_tests().autodiff();
    let wrapped = with_change(tiny(&dev), &[]);
    let bases_before = params(&wrapped).bases;
    let x = batch(&dev);
    let loss = cross_entropy_with_logits(wrapped.forward(x), one_hot(&[0, 1, 2, 0], 3, &dev));
    let grads = GradientsParams::from_grads(loss.backward(), &wrapped);
    let mut optim = SgdConfig::new().init();
    let moved = optim.step(0.5, wrapped, grads);
    let after = params(&moved);
    assert_eq!(after.bases, bases_before, "θ stays frozen");
    assert!(
        after.deltas.iter().flat_map(|(_, d)| d).any(|&v| v != 0.0),
        "θ′ moved"
    );

    for norm in [ChangeNorm::L1, ChangeNorm::L2, ChangeNorm::Both] {
        let penalty = change_penalty(&moved, norm).unwrap();
        let value: f32 = penalty.clone().into_scalar();
        let g = GradientsParams::from_grads(penalty.backward(), &moved);
        let mut want_value = 0f64;
        for (id, d) in &after.deltas {
            let got = host(g.get::<1>(*id).expect("θ′ has a gradient"));
            for (&gv, &dv) in got.iter().zip(d) {
                let (l1, l2) = (dv.signum() * (dv != 0.0) as u8 as f32, 2.0 * dv);
                let want = match norm {
                    ChangeNorm::L1 => l1,
                    ChangeNorm::L2 => l2,
                    ChangeNorm::Both => l1 + l2,
                };
                assert!(
                    (gv - want).abs() <= 1e-6 + 1e-5 * want.abs(),
                    "{norm:?}: {gv} vs {want}"
                );
                want_value += match norm {
                    ChangeNorm::L1 => dv.abs() as f64,
                    ChangeNorm::L2 => (dv * dv) as f64,
                    ChangeNorm::Both => (dv.abs() + dv * dv) as f64,
                };
            }
        }
        assert!((value as f64 - want_value).abs() <= 1e-5 * want_value.max(1.0));
    }
}

#[test]
fn inference_and_the_feature_cache_see_the_change() {
    use reusebench_core::feature_cache::fingerprint;
    let dev = DeviceSpec::for_tests().autodiff();
    let wrapped = with_change(tiny(&dev), &[]);
    let key_before = fingerprint(&wrapped);
    let x = batch(&dev);
    let loss =
        cross_entropy_with_logits(wrapped.forward(x.clone()), one_hot(&[0, 1, 2, 0], 3, &dev));
    let grads = GradientsParams::from_grads(loss.backward(), &wrapped);
    let moved = SgdConfig::new().init().step(0.5, wrapped, grads);
    // The cache's key moves with θ′ (the bases did not move).
    assert_ne!(fingerprint(&moved), key_before);
    // Inference (no autodiff) computes with θ + θ′ too.
    let train = host(moved.forward(x.clone()));
    let infer = host(moved.valid().forward(x.inner()));
    for (a, b) in train.iter().zip(&infer) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

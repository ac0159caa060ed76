//! Reading a stage at its last convolution (`Tap::Conv`, where RESQUE's
//! authors hook): the raw conv output, before batch norm and ReLU, which
//! the block's own output is built from, and which takes negative values
//! that the block's ReLU output never has.

use std::sync::Arc;

use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reusebench_core::DeviceSpec;
use reusebench_core::backbone::BackboneConfig;
use reusebench_core::features::{Tap, pooled_activations};
use reusebench_data::{ImageSet, Normalization};

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

#[test]
fn the_conv_tap_is_what_the_block_output_is_built_from_and_goes_negative() {
    let dev = DeviceSpec::for_tests();
    let config = BackboneConfig {
        width: 4,
        ..Default::default()
    };
    let backbone = config
        .build(&mut ChaCha8Rng::seed_from_u64(2), &dev)
        .valid();
    let net = backbone.as_resnet().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x: Vec<f32> = (0..2 * 3 * 32 * 32)
        .map(|_| rng.random::<f32>() - 0.5)
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(x, [2, 3, 32, 32]), &dev);

    // The last block of layer4, fed what the blocks before it give.
    let mut h = net.conv1.forward(x.clone());
    h = burn::tensor::activation::relu(net.bn1.forward(h));
    if let Some(pool) = &net.maxpool {
        h = pool.forward(h);
    }
    for stage in [&net.layer1, &net.layer2, &net.layer3] {
        for b in stage.iter() {
            h = b.forward(h);
        }
    }
    let (last, before) = net.layer4.split_last().unwrap();
    for b in before {
        h = b.forward(h);
    }
    let conv = last.last_conv_output(h.clone());
    let identity = match &last.downsample {
        Some(d) => d.bn.forward(d.conv.forward(h.clone())),
        None => h.clone(),
    };
    let rebuilt = burn::tensor::activation::relu(last.bn2.forward(conv.clone()) + identity);
    let block = host(last.forward(h));
    let rebuilt = host(rebuilt);
    let worst = block
        .iter()
        .zip(&rebuilt)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst < 1e-4,
        "ReLU(bn2(conv tap) + shortcut) is the block output: {worst}"
    );

    // Pooled over space, through the protocol's reader.
    let [_, c, hh, ww] = conv.dims();
    let pooled_by_hand: Vec<f32> = host(conv)
        .chunks(hh * ww)
        .map(|p| p.iter().sum::<f32>() / (hh * ww) as f32)
        .collect();
    let mut set = ImageSet::empty(3, 32, 32);
    let mut r = ChaCha8Rng::seed_from_u64(4);
    for i in 0..6 {
        let img: Vec<u8> = (0..3 * 32 * 32).map(|_| r.random()).collect();
        set.push(&img, i % 2);
    }
    let set = Arc::new(set);
    let norm = Normalization::IMAGENET;
    let conv_rows =
        pooled_activations(&backbone, "layer4", Tap::Conv, &set, 4, norm, &dev).unwrap();
    let block_rows =
        pooled_activations(&backbone, "layer4", Tap::Block, &set, 4, norm, &dev).unwrap();
    assert_eq!((conv_rows.dim, block_rows.dim), (c, c));
    let negatives = conv_rows.values.iter().filter(|v| **v < 0.0).count();
    assert!(negatives > 0, "the conv tap must see negative values");
    assert!(
        block_rows.values.iter().all(|v| *v >= 0.0),
        "after the ReLU: none"
    );
    assert_eq!(pooled_by_hand.len(), 2 * c);
    assert!(pooled_by_hand.iter().any(|v| *v < 0.0));
}

/// A ViT's taps: a block's MLP raw output (`Tap::Conv`, the block's last
/// linear layer, before the residual sum) and its output (`Tap::Block`),
/// both `[n, dim]`, both with negative values, and different (the residual
/// stream is added); each block reads its own depth; the output is read
/// before the final LayerNorm; names other than `block0`.. are not stages.
#[test]
fn vit_taps_read_a_block_and_its_last_linear_layer() {
    use reusebench_core::backbone::Arch;
    let dev = DeviceSpec::for_tests();
    let config = BackboneConfig {
        arch: Arch::VitTiny,
        depth: Some(2),
        ..Default::default()
    };
    let backbone = config
        .build(&mut ChaCha8Rng::seed_from_u64(5), &dev)
        .valid();
    assert_eq!(backbone.layer_names(), ["block0", "block1"]);
    let mut set = ImageSet::empty(3, 32, 32);
    let mut r = ChaCha8Rng::seed_from_u64(6);
    for i in 0..5 {
        let img: Vec<u8> = (0..3 * 32 * 32).map(|_| r.random()).collect();
        set.push(&img, i % 2);
    }
    let set = Arc::new(set);
    let norm = Normalization::IMAGENET;
    let read = |layer: &str, tap| pooled_activations(&backbone, layer, tap, &set, 2, norm, &dev);
    let (conv, block) = (
        read("block1", Tap::Conv).unwrap(),
        read("block1", Tap::Block).unwrap(),
    );
    assert_eq!(
        (conv.dim, block.dim, conv.values.len()),
        (192, 192, 5 * 192)
    );
    assert!(conv.values.iter().any(|v| *v < 0.0) && block.values.iter().any(|v| *v < 0.0));
    assert_ne!(conv.values, block.values, "the residual stream is added");
    assert!(read("layer4", Tap::Conv).is_none() && read("block2", Tap::Block).is_none());

    let vit = match &backbone {
        reusebench_core::backbone::Backbone::Vit(v) => v,
        _ => unreachable!(),
    };
    let x: Vec<f32> = (0..3 * 32 * 32).map(|_| r.random::<f32>() - 0.5).collect();
    let x = Tensor::<4>::from_data(TensorData::new(x, [1, 3, 32, 32]), &dev);
    let last = host(vit.pooled_at(x.clone(), "block1", false).unwrap());
    let first = host(vit.pooled_at(x.clone(), "block0", false).unwrap());
    assert_ne!(last, first);
    let tokens = vit.tokens(x); // after the final LayerNorm: mean 0 per token
    let per_token_mean: Vec<f32> = host(tokens.mean_dim(2));
    assert!(per_token_mean.iter().all(|m| m.abs() < 1e-4));
    assert!(
        last.iter().sum::<f32>().abs() > 1e-3,
        "the block output is not normalised"
    );
}

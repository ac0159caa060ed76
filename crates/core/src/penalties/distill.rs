//! Knowledge distillation on logits (LwF).

use burn::tensor::Tensor;
use burn::tensor::activation::{log_softmax, softmax};

/// `T² · mean_i Σ_c −softmax(old_i / T)_c · log softmax(new_i / T)_c`: the
/// cross-entropy between the old model's softened predictions and the new
/// model's, over the given logit columns (Hinton et al.; Li & Hoiem's LwF
/// with `T = 2`). The `T²` factor keeps gradient sizes comparable across
/// temperatures. `old` carries no gradient.
pub fn distillation_loss(new: Tensor<2>, old: Tensor<2>, temperature: f64) -> Tensor<1> {
    let [n, _] = new.dims();
    let target = softmax(old.detach() / temperature, 1);
    let log_p = log_softmax(new / temperature, 1);
    (target * log_p).sum().neg() * (temperature * temperature / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn matches_hand_values() {
        let dev = Device::flex();
        let t = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [1, 2]), &dev);
        // T = 1, old = [0, 0] -> target [0.5, 0.5]; new = [ln 3, 0] -> p = [0.75, 0.25]:
        // -(0.5 ln 0.75 + 0.5 ln 0.25) = 0.8369882.
        let v =
            distillation_loss(t(vec![3f32.ln(), 0.0]), t(vec![0.0, 0.0]), 1.0).into_scalar::<f32>();
        assert!((v - 0.836_988_2).abs() < 1e-5, "{v}");
        // T = 2, old = [2 ln 3, 0] -> target [0.75, 0.25]; new = [0, 0] -> p = [0.5, 0.5]:
        // 4 · ln 2 = 2.7725887.
        let v = distillation_loss(t(vec![0.0, 0.0]), t(vec![2.0 * 3f32.ln(), 0.0]), 2.0)
            .into_scalar::<f32>();
        assert!((v - 2.772_588_7).abs() < 1e-5, "{v}");
        // Equal logits: the loss is the target's entropy times T² (here ln 2).
        let v = distillation_loss(t(vec![1.0, 1.0]), t(vec![1.0, 1.0]), 1.0).into_scalar::<f32>();
        assert!((v - std::f32::consts::LN_2).abs() < 1e-5, "{v}");
    }
}

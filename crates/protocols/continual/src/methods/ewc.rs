//! `ewc`: online EWC (Schwarz et al. 2018, after Kirkpatrick et al. 2017),
//! as Mammoth's `ewc_on.py`: after each task the diagonal Fisher F_new =
//! mean over the task's samples of p(y|x)·(∂ log p(y|x)/∂θ_k)² (`fisher:
//! mammoth`; `empirical` leaves out the p(y|x) weight) is merged as
//! F ← γ·F + F_new; later tasks add λ·Σ_k F_k (θ_k − θ*_k)² with θ* the
//! weights after the previous task — λ on Mammoth's `e_lambda` scale (no ½).

use reusebench_core::bounded::{NonNegative, Probability};
use serde::{Deserialize, Serialize};

use super::{ContinualMethod, Learned, LpStage, TaskContext, learn_with_importance};
use reusebench_core::model::Classifier;
use reusebench_core::penalties::{ImportanceKind, ParamTable, accumulate};
use reusebench_core::train::OptimConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ewc {
    pub epochs: usize,
    pub optimizer: OptimConfig,
    /// λ, the penalty's weight (no default: it depends on the data's scale).
    pub lambda: NonNegative,
    /// Decay of the old Fisher (1 = plain sum over tasks).
    #[serde(default = "default_gamma")]
    pub gamma: Probability,
    /// Estimate the Fisher on this many samples per task; all when absent.
    #[serde(default)]
    pub fisher_samples: Option<usize>,
    /// How each sample's squared gradient counts.
    #[serde(default)]
    pub fisher: FisherKind,
    #[serde(default)]
    pub lp: Option<LpStage>,
}

fn default_gamma() -> Probability {
    Probability::of(1.0)
}

/// Which Fisher estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FisherKind {
    /// Weighted by p(y|x), as Mammoth's `ewc_on.py`.
    #[default]
    Mammoth,
    /// The plain empirical Fisher (what `ewc` computed before).
    Empirical,
}

impl Ewc {
    /// The factor of Σ_k F_k (θ_k − θ*_k)² in the loss: Mammoth's
    /// `e_lambda` (its penalty has no ½), so a λ from Mammoth's best
    /// arguments means the same here.
    pub fn penalty_scale(&self) -> f64 {
        self.lambda.get()
    }
}

super::probe_then_fine_tune!(Ewc);

impl ContinualMethod for Ewc {
    type State = Option<(ParamTable, ParamTable)>;
    fn learn_task(&self, state: &mut Self::State, model: Classifier, ctx: &TaskContext) -> Learned {
        let gamma = self.gamma.get();
        learn_with_importance(
            state,
            match self.fisher {
                FisherKind::Mammoth => ImportanceKind::FisherWeighted,
                FisherKind::Empirical => ImportanceKind::Fisher,
            },
            self.fisher_samples,
            self.penalty_scale(),
            |mut old, new| {
                accumulate(&mut old, new, gamma);
                old
            },
            self.training(),
            model,
            ctx,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_is_on_mammoths_scale_and_the_fisher_weighted_by_default() {
        let ewc: Ewc =
            serde_json::from_str(r#"{"epochs": 1, "optimizer": {"lr": 0.1}, "lambda": 10.0}"#)
                .unwrap();
        // Mammoth: e_lambda * sum(F * (theta - theta*)^2), no 1/2.
        assert_eq!(ewc.penalty_scale(), 10.0);
        assert_eq!(ewc.fisher, FisherKind::Mammoth);
    }
}

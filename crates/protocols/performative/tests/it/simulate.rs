//! The round loop on a deployed model made by hand: three classes with
//! 1-D Gaussian class conditionals, whose posteriors under the (uniform)
//! source prior are known exactly. The correction methods must then do what
//! Bayes says they do.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reusebench_core::metrics::{MetricRow, names};
use reusebench_core::model::linear_head;
use reusebench_core::{DeviceSpec, NoProgress};
use reusebench_performative::methods::{
    Bbse, Deployed, EmPrior, MethodSpec, NoAdapt, OraclePrior, OracleSource, Pap,
};
use reusebench_performative::simulator::Replace;
use reusebench_performative::{Parts, Settings, simulate};

const MEANS: [f64; 3] = [-1.5, 0.0, 1.5];
const PER_CLASS: usize = 400;

fn deployed() -> (Deployed, Parts) {
    let device = DeviceSpec::for_tests();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (mut xs, mut labels) = (Vec::new(), Vec::new());
    for (c, m) in MEANS.iter().enumerate() {
        for _ in 0..PER_CLASS {
            let (a, b): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
            xs.push(m + (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos());
            labels.push(c as u32);
        }
    }
    let probs: Vec<f64> = xs
        .iter()
        .flat_map(|&x| {
            let w: Vec<f64> = MEANS
                .iter()
                .map(|m| (-(x - m).powi(2) / 2.0).exp())
                .collect();
            let s: f64 = w.iter().sum();
            w.into_iter().map(move |v| v / s)
        })
        .collect();
    let parts = Parts {
        train: (0..3)
            .map(|c| (c * PER_CLASS..c * PER_CLASS + PER_CLASS / 2).collect())
            .collect(),
        test: (0..3)
            .map(|c| (c * PER_CLASS + PER_CLASS / 2..(c + 1) * PER_CLASS).collect())
            .collect(),
    };
    let deployed = Deployed {
        classes: 3,
        probs,
        features: reusebench_core::features::Rows {
            values: xs.iter().map(|&x| x as f32).collect(),
            dim: 1,
        },
        head: linear_head(&mut rng, 1, 3, &device),
        labels,
        source_prior: vec![1.0 / 3.0; 3],
        pool_train: parts.train.concat(),
        source: None,
    };
    (deployed, parts)
}

fn settings(method: &str) -> Settings {
    Settings {
        method: method.into(),
        rounds: 40,
        dirichlet_alpha: 100.0,
        temperature: 0.1,
        sign: -1.0,
        n_train: 300,
        n_test: 600,
        min_per_class: 5,
        replace: Replace::Auto,
    }
}

fn run(method: &dyn MethodSpec, name: &str) -> Vec<MetricRow> {
    let (deployed, parts) = deployed();
    let device = DeviceSpec::for_tests().autodiff();
    let adapter = method.build(&deployed, 0, &device).unwrap();
    simulate(
        &settings(name),
        &deployed,
        &parts,
        (adapter, None),
        ChaCha8Rng::seed_from_u64(5),
        (&NoProgress, &|_| {}),
    )
    .unwrap()
}

fn scalar(rows: &[MetricRow], metric: &str) -> f64 {
    rows.iter()
        .find(|r| r.metric == metric && r.is_scalar())
        .unwrap_or_else(|| panic!("no {metric}"))
        .value
}

fn per_round(rows: &[MetricRow], metric: &str) -> Vec<f64> {
    rows.iter()
        .filter(|r| r.metric == metric)
        .map(|r| r.value)
        .collect()
}

#[test]
fn the_oracle_prior_beats_no_adaptation_and_em_comes_close() {
    let none = run(&NoAdapt {}, "no-adapt");
    let oracle = run(&OraclePrior::default(), "oracle-prior");
    let em = run(&EmPrior::default(), "em-prior");
    let bbse = run(&Bbse {}, "bbse");
    let (a_none, a_oracle, a_em, a_bbse) = (
        scalar(&none, names::MEAN_ROUND_ACC),
        scalar(&oracle, names::MEAN_ROUND_ACC),
        scalar(&em, names::MEAN_ROUND_ACC),
        scalar(&bbse, names::MEAN_ROUND_ACC),
    );
    // The adversarial shift (τ = 0.1) piles the mass on the class the
    // uncorrected model gets wrong most: Bayes correction pays off.
    assert!(
        a_oracle > a_none + 3.0,
        "oracle {a_oracle} vs none {a_none}"
    );
    assert!(
        scalar(&oracle, names::MEAN_ROUND_CE) < scalar(&none, names::MEAN_ROUND_CE),
        "the oracle's loss is lower"
    );
    for (name, a) in [("em", a_em), ("bbse", a_bbse)] {
        assert!(a > a_none + 1.0, "{name} {a} vs none {a_none}");
        assert!(a <= a_oracle + 1.5, "{name} {a} vs oracle {a_oracle}");
    }
    // The oracle corrects with the test sample's own class frequencies
    // (the authors'): near the proportions, not equal (KL > 0 in some
    // round). With `prior: proportions` it predicts them exactly.
    let kl = per_round(&oracle, names::ROUND_KL_PRIOR);
    assert!(
        kl.iter().all(|&v| v >= 0.0) && kl.iter().any(|&v| v > 1e-9),
        "{kl:?}"
    );
    let exact = OraclePrior {
        prior: OracleSource::Proportions,
    };
    let by_proportions = run(&exact, "oracle-prior");
    assert!(
        per_round(&by_proportions, names::ROUND_KL_PRIOR)
            .iter()
            .all(|&kl| kl.abs() < 1e-12)
    );
    // no-adapt predicts no prior: no KL rows.
    assert!(per_round(&none, names::ROUND_KL_PRIOR).is_empty());
    assert_eq!(per_round(&none, names::ROUND_ACC).len(), 40);
    // EM's estimate is close to the truth on 600 test images.
    assert!(scalar(&em, names::MEAN_ROUND_KL_PRIOR) < 0.05);
}

#[test]
fn the_proportions_answer_the_methods_accuracy() {
    // Round 0 draws the same proportions for every method; later rounds
    // follow each method's own accuracy, so trajectories part.
    let none = run(&NoAdapt {}, "no-adapt");
    let oracle = run(&OraclePrior::default(), "oracle-prior");
    let (p_none, p_oracle) = (
        per_round(&none, names::ROUND_MAX_PROPORTION),
        per_round(&oracle, names::ROUND_MAX_PROPORTION),
    );
    assert_eq!(p_none[0], p_oracle[0]);
    assert_ne!(p_none[1..], p_oracle[1..]);
    // Dirichlet(100) starts near uniform; τ = 0.1 then sharpens the shift.
    assert!(p_none[0] < 0.45, "{}", p_none[0]);
    assert!(p_none[1..].iter().any(|&p| p > 0.6), "{p_none:?}");
}

#[test]
fn pap_learns_the_prior_and_the_run_is_deterministic() {
    let pap = Pap {
        lr: reusebench_core::bounded::Positive::of(1e-3),
        epochs_per_round: 5,
        ..Pap::default()
    };
    let a = run(&pap, "pap");
    let b = run(&pap, "pap");
    let strip = |rows: &[MetricRow]| -> Vec<(String, u64)> {
        rows.iter()
            .filter(|r| !names::TIMING.contains(&r.metric.as_str()))
            .map(|r| (r.metric.clone(), r.value.to_bits()))
            .collect()
    };
    assert_eq!(strip(&a), strip(&b), "same seed, same rows");
    // Its predicted prior gets closer to the truth as pairs accumulate.
    let kl = per_round(&a, names::ROUND_KL_PRIOR);
    let early: f64 = kl[1..6].iter().sum::<f64>() / 5.0;
    let late: f64 = kl[35..].iter().sum::<f64>() / 5.0;
    assert!(late < early, "KL early {early} late {late}");
}

/// Every round's rows reach the live sink as the round ends, in order:
/// exactly the rows with a `round` coordinate the cell returns.
#[test]
fn each_round_goes_live_as_it_ends() {
    let (deployed, parts) = deployed();
    let device = DeviceSpec::for_tests().autodiff();
    let adapter = NoAdapt {}.build(&deployed, 0, &device).unwrap();
    let sent = std::sync::Mutex::new(Vec::new());
    let live = |row: &MetricRow| sent.lock().unwrap().push(row.clone());
    let rows = simulate(
        &settings("no-adapt"),
        &deployed,
        &parts,
        (adapter, None),
        ChaCha8Rng::seed_from_u64(5),
        (&NoProgress, &live),
    )
    .unwrap();
    let per_round: Vec<MetricRow> = rows.into_iter().filter(|r| !r.is_scalar()).collect();
    assert_eq!(*sent.lock().unwrap(), per_round);
    assert_eq!(
        per_round
            .iter()
            .filter(|r| r.metric == names::ROUND_ACC)
            .count(),
        40
    );
}

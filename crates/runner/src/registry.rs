//! The protocols a grid can name. Each is registered with one line in
//! [`Registry::builtin`]; the rest of the runner knows a protocol only
//! through [`ProtocolEntry`] and [`CellConfig`].

use std::any::Any;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::path::PathBuf;

use reusebench_core::{Checks, CoreError, MetricRow, Protocol, RunEnv};
use serde_json::Value;

/// Every protocol this build knows: one line each.
impl Registry {
    pub fn builtin() -> Self {
        Registry::empty()
            .with::<reusebench_pretrain::Pretrain>()
            .with::<reusebench_continual::Continual>()
            .with::<reusebench_performative::Performative>()
            .with::<reusebench_resque::Resque>()
            .with::<reusebench_debias::Debias>()
            .with::<reusebench_canonicalize::Canonicalize>()
    }
}

/// Protocols by name.
pub struct Registry {
    entries: Vec<Box<dyn ProtocolEntry>>,
}

impl Registry {
    pub fn empty() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// This registry with `P` added (a protocol of the same name is replaced).
    pub fn with<P: Protocol>(mut self) -> Self {
        self.entries.retain(|e| e.name() != P::NAME);
        self.entries.push(Box::new(Entry::<P>(PhantomData)));
        self
    }

    pub fn get(&self, name: &str) -> Option<&dyn ProtocolEntry> {
        self.entries
            .iter()
            .find(|e| e.name() == name)
            .map(|e| e.as_ref())
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.name()).collect()
    }
}

/// A registered protocol with its config type erased.
pub trait ProtocolEntry: Send + Sync {
    fn name(&self) -> &'static str;
    /// The metric `tune:` selects on by default.
    fn objective(&self) -> &'static str;
    /// [`reusebench_core::protocol::Protocol::TRIAL_SKIPS`].
    fn trial_skips(&self) -> &'static [(&'static str, &'static str)];
    /// Deserialises a cell's config; on error, the dotted key path at fault
    /// ("" for the whole config) and the message.
    fn parse(&self, config: &Value) -> Result<Box<dyn CellConfig>, (String, String)>;
}

/// One cell's typed configuration, behind the protocol's trait.
pub trait CellConfig: Debug + Send + Sync {
    fn protocol(&self) -> &'static str;
    fn seed(&self) -> u64;
    fn method(&self) -> String;
    fn inputs(&self) -> Vec<PathBuf>;
    /// The typed config with every default applied, as JSON.
    fn typed_json(&self) -> Value;
    fn outputs(&self) -> Vec<PathBuf>;
    fn validate(&self, checks: &Checks) -> Result<(), CoreError>;
    fn run(&self, env: &RunEnv) -> Result<Vec<MetricRow>, CoreError>;
    /// The typed config, for callers that know the protocol (tests, tools).
    fn as_any(&self) -> &dyn Any;
    /// Another config of the same protocol (a tuned cell's, chosen at run time).
    fn reparse(&self, config: &Value) -> Result<Box<dyn CellConfig>, (String, String)>;
}

struct Entry<P>(PhantomData<fn() -> P>);

impl<P: Protocol> ProtocolEntry for Entry<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }
    fn objective(&self) -> &'static str {
        P::OBJECTIVE
    }
    fn trial_skips(&self) -> &'static [(&'static str, &'static str)] {
        P::TRIAL_SKIPS
    }

    fn parse(&self, config: &Value) -> Result<Box<dyn CellConfig>, (String, String)> {
        let typed =
            serde_path_to_error::deserialize::<_, P::Config>(config.clone()).map_err(|e| {
                let p = e.path().to_string();
                let p = if p == "." { String::new() } else { p };
                reusebench_core::method::split_nested(&p, &e.into_inner().to_string())
            })?;
        let seed = config.get("seed").and_then(Value::as_u64).ok_or_else(|| {
            (
                "seed".to_string(),
                "every cell needs a whole-number seed".to_string(),
            )
        })?;
        Ok(Box::new(Typed::<P> {
            config: typed,
            seed,
        }))
    }
}

struct Typed<P: Protocol> {
    config: P::Config,
    seed: u64,
}

impl<P: Protocol> Debug for Typed<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.config.fmt(f)
    }
}

impl<P: Protocol> CellConfig for Typed<P> {
    fn protocol(&self) -> &'static str {
        P::NAME
    }
    fn seed(&self) -> u64 {
        self.seed
    }
    fn method(&self) -> String {
        P::method(&self.config)
    }
    fn inputs(&self) -> Vec<PathBuf> {
        P::inputs(&self.config)
    }
    fn typed_json(&self) -> Value {
        serde_json::to_value(&self.config).expect("a config serialises")
    }
    fn outputs(&self) -> Vec<PathBuf> {
        P::outputs(&self.config)
    }
    fn validate(&self, checks: &Checks) -> Result<(), CoreError> {
        P::validate(&self.config, checks)
    }
    fn run(&self, env: &RunEnv) -> Result<Vec<MetricRow>, CoreError> {
        // Checked again now that earlier cells have written what this one
        // reads (a checkpoint's header in particular).
        P::validate(&self.config, &Checks::standalone())?;
        P::run(&self.config, env)
    }
    fn as_any(&self) -> &dyn Any {
        &self.config
    }
    fn reparse(&self, config: &Value) -> Result<Box<dyn CellConfig>, (String, String)> {
        Entry::<P>(PhantomData).parse(config)
    }
}

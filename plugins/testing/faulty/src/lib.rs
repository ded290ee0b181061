//! A scimd hook plugin for the host's tests, misbehaving on request. Configuration:
//!
//! - `panic`: phases (`map`, `decide`, `react`) in which every call panics;
//! - `hang_ms`: milliseconds every call sleeps first (longer than the host's timeout = a hang);
//! - `record`: a file to which every react call appends its event as one JSON line;
//! - `suffix`: a string the map phase appends to `displayName` (shows the call went through).
//!
//! Not an example to copy: it exists to prove that the host survives plugins that panic or
//! hang, and to observe what react hooks are given.

#![deny(unsafe_code)]

use scimd_plugin_api::{Context, Denial, Event, Phase, Plugin, Resource, export_plugin};
use serde_json::{Map, Value};
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

/// The misbehaving plugin.
#[derive(Debug)]
pub struct Faulty {
    panic: Vec<Phase>,
    hang: Option<Duration>,
    record: Option<Mutex<std::fs::File>>,
    suffix: Option<String>,
}

impl Faulty {
    fn enter(&self, phase: Phase) {
        if let Some(d) = self.hang {
            std::thread::sleep(d);
        }
        if self.panic.contains(&phase) {
            panic!("configured to panic in the {phase:?} phase");
        }
    }
}

impl Plugin for Faulty {
    const NAME: &'static str = "test-faulty";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const PHASES: &'static [Phase] = &[Phase::Map, Phase::Decide, Phase::React];

    fn new(config: Value) -> Result<Self, String> {
        let get = |k: &str| config.get(k).cloned().unwrap_or(Value::Null);
        let panic = serde_json::from_value(get("panic"))
            .map(|p: Option<Vec<Phase>>| p.unwrap_or_default())
            .map_err(|e| format!("panic: {e}"))?;
        let hang = get("hang_ms").as_u64().map(Duration::from_millis);
        let record = match get("record").as_str() {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("record file {path}: {e}"))?,
            )),
            None => None,
        };
        let suffix = get("suffix").as_str().map(str::to_string);
        Ok(Faulty {
            panic,
            hang,
            record,
            suffix,
        })
    }

    fn map(
        &self,
        _cx: &Context,
        _old: Option<&Resource>,
        resource: &mut Map<String, Value>,
    ) -> Result<(), Denial> {
        self.enter(Phase::Map);
        if let Some(suffix) = &self.suffix
            && let Some(Value::String(d)) = resource.get_mut("displayName")
        {
            d.push_str(suffix);
        }
        Ok(())
    }

    fn decide(
        &self,
        _cx: &Context,
        _old: Option<&Resource>,
        _resource: Option<&mut Map<String, Value>>,
    ) -> Result<(), Denial> {
        self.enter(Phase::Decide);
        Ok(())
    }

    fn react(&self, event: &Event) -> Result<(), String> {
        self.enter(Phase::React);
        if let Some(file) = &self.record {
            let mut line = serde_json::to_vec(event).map_err(|e| e.to_string())?;
            line.push(b'\n');
            let mut f = file.lock().map_err(|_| "record file lock poisoned")?;
            f.write_all(&line).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

export_plugin!(Faulty);

//! An in-memory store that fails on demand, for unit tests of the layers above the stores
//! (retries, multi://). It is shared through an `Arc`, so that a test keeps a handle on a
//! store it gave to a layer: to make its next operations fail, count the calls, and see
//! what it holds.

use super::Backend;
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The operations a fault can be injected into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    List,
    Get,
    Put,
    Delete,
    Size,
}

#[derive(Default)]
pub struct Memory {
    name: String,
    files: Mutex<BTreeMap<String, Vec<u8>>>,
    /// Storage errors still to give, per operation.
    faults: Mutex<HashMap<Op, u32>>,
    calls: Mutex<HashMap<Op, u32>>,
}

impl Memory {
    pub fn new(name: &str) -> Arc<Memory> {
        Arc::new(Memory {
            name: name.to_string(),
            ..Memory::default()
        })
    }

    /// Makes the next `times` calls of `op` fail with a storage error (a 503, say).
    pub fn fail(&self, op: Op, times: u32) {
        *self.faults.lock().unwrap().entry(op).or_default() += times;
    }

    /// How many times `op` was called.
    pub fn calls(&self, op: Op) -> u32 {
        self.calls.lock().unwrap().get(&op).copied().unwrap_or(0)
    }

    /// What the store holds.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        self.files.lock().unwrap().clone()
    }

    fn enter(&self, op: Op) -> Result<()> {
        *self.calls.lock().unwrap().entry(op).or_default() += 1;
        let mut faults = self.faults.lock().unwrap();
        match faults.get_mut(&op) {
            Some(n) if *n > 0 => {
                *n -= 1;
                Err(Error::backend(format!(
                    "{}: injected {op:?} fault",
                    self.name
                )))
            }
            _ => Ok(()),
        }
    }
}

impl Backend for Arc<Memory> {
    fn list(&self) -> Result<Vec<String>> {
        self.enter(Op::List)?;
        Ok(self.files.lock().unwrap().keys().cloned().collect())
    }
    fn get(&self, name: &str, dest: &Path) -> Result<()> {
        self.enter(Op::Get)?;
        let data = self.files.lock().unwrap().get(name).cloned();
        let data = data.ok_or_else(|| Error::corrupt(format!("{name} is missing")))?;
        std::fs::write(dest, data).map_err(|e| Error::io(dest, e))
    }
    fn put(&self, src: &Path, name: &str) -> Result<()> {
        self.enter(Op::Put)?;
        let data = std::fs::read(src).map_err(|e| Error::io(src, e))?;
        self.files.lock().unwrap().insert(name.to_string(), data);
        Ok(())
    }
    fn delete(&self, name: &str) -> Result<()> {
        self.enter(Op::Delete)?;
        self.files.lock().unwrap().remove(name);
        Ok(())
    }
    fn size(&self, name: &str) -> Result<Option<u64>> {
        self.enter(Op::Size)?;
        Ok(self.files.lock().unwrap().get(name).map(|d| d.len() as u64))
    }
    fn describe(&self) -> String {
        format!("memory://{}", self.name)
    }
}

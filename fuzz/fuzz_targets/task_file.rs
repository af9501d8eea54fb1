//! Task files (`TaskDelta::from_bytes`) against the tiny model. Mode byte even: the rest is the
//! file's raw bytes; odd: the rest drives a well-formed safetensors file with fuzzed names,
//! dtypes, shapes, data and metadata (`lrs_fuzz::st`). A file that loads must run through the
//! serving forward pass without error.
#![no_main]

use lrs_nn::ModelFile;
use std::path::Path;
use std::sync::OnceLock;

use arbitrary::Unstructured;
use candle_core::{DType, Device};
use libfuzzer_sys::fuzz_target;
use lrs_fuzz::st::{self, Vocab};
use lrs_fuzz::tiny::{tiny, RANK};
use lrs_nn::TaskDelta;

fn vocab() -> &'static Vocab {
    static VOCAB: OnceLock<Vocab> = OnceLock::new();
    VOCAB.get_or_init(|| {
        let t = tiny();
        let mut names: Vec<String> = t
            .task_check
            .modules
            .keys()
            .flat_map(|m| {
                ["lrs_w", "lrs_idx", "lrs_val", "lora_a", "lora_b"].map(|k| format!("{m}.{k}"))
            })
            .collect();
        names.extend(["head.weight", "head.bias", "head.extra"].map(String::from));
        let mut dims = vec![0, 1, 2, 3, RANK, 5, 7, 8];
        for (o, i) in t.task_check.modules.values() {
            dims.extend([*o, *i, o * i]);
        }
        dims.sort_unstable();
        dims.dedup();
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Vocab {
            names,
            dims,
            meta: vec![
                ("format".into(), v(&["lrs-task", "lrs-shared"])),
                ("version".into(), v(&["1", "2"])),
                ("task_id".into(), v(&["alice", ""])),
                ("base_sha256".into(), vec![lrs_fuzz::base_sha256()]),
                ("shared_sha256".into(), vec![lrs_fuzz::shared_sha256()]),
                ("rank".into(), v(&["4", "3", "0", "18446744073709551616"])),
                ("created".into(), v(&["2026-01-01T00:00:00Z"])),
                (
                    "lora_alpha".into(),
                    v(&["8", "0", "-1", "NaN", "inf", "1e308", "1e-320"]),
                ),
            ],
            max_tensors: 8,
            max_elems: 4096,
        }
    })
}

fn structured(data: &[u8]) -> Option<Vec<u8>> {
    let mut u = Unstructured::new(data);
    let vocab = vocab();
    let tensors = st::arbitrary_tensors(&mut u, vocab).ok()?;
    let mut meta = st::arbitrary_meta(&mut u, vocab).ok()?;
    // Mostly the true count, so the checks after `nnz` are reached.
    if u.ratio(7, 8).unwrap_or(true) {
        let nnz = st::elements_with_suffix(&tensors, ".lrs_idx");
        meta.insert("nnz".into(), nnz.to_string());
    } else {
        meta.insert("nnz".into(), u.arbitrary::<String>().ok()?);
    }
    st::serialize(&tensors, meta)
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = lrs_fuzz::split_mode(data) else {
        return;
    };
    let bytes = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        match structured(rest) {
            Some(b) => b,
            None => return,
        }
    };
    let t = tiny();
    let path = Path::new("fuzz.safetensors");
    match TaskDelta::from_bytes(path, &bytes, &t.task_check, &Device::Cpu, DType::F32) {
        Ok(task) => {
            let _ = task.resident_bytes();
            let head = Some((&t.head.0, &t.head.1));
            if let Err(e) = lrs_fuzz::tiny::score(&t.model, head, &task) {
                panic!("task file accepted by the loader fails the forward pass: {e}");
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

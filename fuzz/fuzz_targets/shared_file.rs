//! Shared files (`SharedFactor::from_bytes`) against the tiny model. Mode byte even: raw bytes;
//! odd: a well-formed safetensors file with fuzzed contents (`lrs_fuzz::st`). A file that loads
//! and installs (`BertModel::set_shared`) must run through the serving forward pass (with its
//! own head, as `lrs_serve::Engine` uses it) without error; the original factor is restored
//! after each input.
#![no_main]

use lrs_nn::ModelFile;
use std::path::Path;
use std::sync::OnceLock;

use arbitrary::Unstructured;
use candle_core::{DType, Device};
use libfuzzer_sys::fuzz_target;
use lrs_fuzz::st::{self, Vocab};
use lrs_fuzz::tiny::{tiny, RANK};
use lrs_nn::bert::binary_head::{HEAD_BIAS, HEAD_WEIGHT};
use lrs_nn::{SharedFactor, TaskDelta};

fn vocab() -> &'static Vocab {
    static VOCAB: OnceLock<Vocab> = OnceLock::new();
    VOCAB.get_or_init(|| {
        let t = tiny();
        let mut names: Vec<String> = t
            .shared_check
            .modules
            .keys()
            .flat_map(|m| ["lrs_u", "lrs_v"].map(|k| format!("{m}.{k}")))
            .collect();
        names.extend([HEAD_WEIGHT, HEAD_BIAS, "head.extra"].map(String::from));
        let mut dims = vec![0, 1, 2, 3, RANK, 5];
        for (o, i) in t.shared_check.modules.values() {
            dims.extend([*o, *i]);
        }
        dims.sort_unstable();
        dims.dedup();
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let targets = serde_json::to_string(&t.shared.target_modules).unwrap_or_default();
        Vocab {
            names,
            dims,
            meta: vec![
                ("format".into(), v(&["lrs-shared", "lrs-task"])),
                ("version".into(), v(&["1", "0"])),
                ("base_model".into(), v(&["tiny", ""])),
                ("base_sha256".into(), vec![lrs_fuzz::base_sha256()]),
                ("rank".into(), v(&["4", "3", "0", "-4"])),
                (
                    "scale".into(),
                    v(&["1", "0", "2", "-1", "NaN", "inf", "1e308", "1e-320"]),
                ),
                (
                    "target_modules".into(),
                    vec![targets, "[]".into(), "[\"query\"]".into(), "{}".into()],
                ),
                (
                    "dp".into(),
                    v(&["{\"epsilon\":8.0,\"delta\":1e-5}", "null", "[", "1"]),
                ),
            ],
            max_tensors: 12,
            max_elems: 4096,
        }
    })
}

fn structured(data: &[u8]) -> Option<Vec<u8>> {
    let mut u = Unstructured::new(data);
    let vocab = vocab();
    let tensors = st::arbitrary_tensors(&mut u, vocab).ok()?;
    let meta = st::arbitrary_meta(&mut u, vocab).ok()?;
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
    let path = Path::new("shared.safetensors");
    let shared =
        match SharedFactor::from_bytes(path, &bytes, &t.shared_check, &Device::Cpu, DType::F32) {
            Ok(s) => s,
            Err(e) => {
                let _ = e.to_string();
                return;
            }
        };
    // A refused install may have copied some modules already: restore in every case.
    let result = t.model.set_shared(&shared).ok().map(|()| {
        // As `Engine::new` picks the shared head.
        let head = match (shared.head.get(HEAD_WEIGHT), shared.head.get(HEAD_BIAS)) {
            (Some(w), Some(b)) => Some((w, b)),
            _ => None,
        };
        lrs_fuzz::tiny::score(&t.model, head, &TaskDelta::new("", shared.rank))
    });
    t.model
        .set_shared(&t.shared)
        .expect("restore the shared factor");
    if let Some(Err(e)) = result {
        panic!("shared file accepted and installed fails the forward pass: {e}");
    }
});

//! lrs-core's linear-harness files: `data_file::instance_from_bytes` and `params_from_bytes`
//! on the same input. Mode byte even: raw bytes; odd: a well-formed safetensors file with
//! fuzzed contents (`lrs_fuzz::st`). Whatever reads must feed `metrics::report` (the shapes
//! the readers promise) without panicking.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use lrs_core::data_file::{instance_from_bytes, params_from_bytes, DATA_FORMAT, MODEL_FORMAT};
use lrs_core::metrics;
use lrs_fuzz::st::{self, Vocab};

fn vocab() -> &'static Vocab {
    static VOCAB: OnceLock<Vocab> = OnceLock::new();
    VOCAB.get_or_init(|| Vocab {
        names: [
            "x", "y", "x_test", "y_test", "u_star", "w_star", "b_star", "u", "w", "b",
        ]
        .map(String::from)
        .to_vec(),
        dims: vec![0, 1, 2, 3, 4, 5],
        meta: vec![(
            "format".into(),
            vec![DATA_FORMAT.into(), MODEL_FORMAT.into()],
        )],
        max_tensors: 8,
        max_elems: 1024,
    })
}

fn structured(data: &[u8]) -> Option<Vec<u8>> {
    let mut u = Unstructured::new(data);
    let vocab = vocab();
    let mut tensors = st::arbitrary_tensors(&mut u, vocab).ok()?;
    // The readers only take F64: make most tensors F64 so their shape checks are reached.
    for t in tensors.values_mut() {
        if u.ratio(7, 8).ok()? && t.dtype != safetensors::Dtype::F64 {
            let elems: usize = t.shape.iter().product();
            let mut data = u.bytes((elems * 8).min(u.len())).ok()?.to_vec();
            data.resize(elems * 8, 0);
            t.dtype = safetensors::Dtype::F64;
            t.data = data;
        }
    }
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
    let path = Path::new("fuzz.safetensors");
    match instance_from_bytes(path, &bytes) {
        Ok(file) => {
            let inst = &file.instance;
            let (t, d) = (inst.train.tasks, inst.train.dim);
            let theta = match &inst.truth {
                Some(truth) => truth.theta(),
                None => vec![0.0; t * d],
            };
            let _ = metrics::report(
                &theta,
                inst.truth.as_ref().map(|p| &p.u),
                inst.truth.as_ref().map(|p| p.b.as_slice()),
                &inst.train,
                inst.test.as_ref(),
                inst.truth.as_ref(),
            );
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    match params_from_bytes(path, &bytes) {
        Ok(p) => {
            let _ = metrics::relative_theta_error(&p, &p);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

//! Every training config shipped in `configs/` parses and validates, so a documented command
//! never starts with a config error.

use std::path::Path;

use lrs_train::TrainConfig;

#[test]
fn every_shipped_training_config_parses_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("configs/") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let cfg =
            TrainConfig::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        cfg.validate()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        checked.push(
            path.file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned(),
        );
    }
    checked.sort();
    assert!(
        checked.iter().any(|n| n == "planted.toml") && checked.len() >= 5,
        "{checked:?}"
    );
}

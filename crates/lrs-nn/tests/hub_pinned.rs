//! A hub model pinned to a commit (`id@<commit>`, what shared files record as `base_model`)
//! resolves from its snapshot directory in the hf-hub cache without network, though the cache
//! has `refs/main` only. Its own test binary: it sets `HF_HOME` for the process.

use lrs_nn::BertCheckpoint;

#[test]
fn a_commit_pinned_model_resolves_from_its_cached_snapshot() {
    let home = tempfile::tempdir().expect("tempdir");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let repo = home.path().join("hub/models--org--tiny");
    let snap = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).expect("snapshot dir");
    std::fs::create_dir_all(repo.join("refs")).expect("refs");
    std::fs::write(repo.join("refs/main"), commit).expect("refs/main");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::write(snap.join(f), b"{}").expect("file");
    }
    std::env::set_var("HF_HOME", home.path());
    let ckpt = BertCheckpoint::resolve(&format!("org/tiny@{commit}")).expect("resolves offline");
    assert_eq!(ckpt.weights, snap.join("model.safetensors"));
    assert_eq!(ckpt.source, format!("org/tiny@{commit}"));
    let main = BertCheckpoint::resolve("org/tiny").expect("refs/main resolves");
    assert_eq!(main.config, snap.join("config.json"));
}

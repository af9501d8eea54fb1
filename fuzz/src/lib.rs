//! Shared pieces of the lrs fuzz targets: well-formed safetensors files with fuzzed contents
//! ([`st`]), the tiny model every target loads into ([`tiny`]) and the serving forward pass the
//! file targets run on whatever loads ([`tiny::score`]).

pub mod st;
pub mod tiny;

/// sha256 (hex) that the fuzz targets' [`lrs_nn::LoadCheck`] expects as `base_sha256`: a fixed
/// string, so the committed seed files stay valid whatever the tiny base's bytes are.
pub fn base_sha256() -> String {
    lrs_nn::files::sha256_hex(b"lrs-fuzz base")
}

/// sha256 (hex) the task-file check expects as `shared_sha256` (fixed, as [`base_sha256`]).
pub fn shared_sha256() -> String {
    lrs_nn::files::sha256_hex(b"lrs-fuzz shared")
}

/// Splits a fuzz input into its mode byte and the rest (`None` for an empty input).
pub fn split_mode(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(&m, rest)| (m, rest))
}

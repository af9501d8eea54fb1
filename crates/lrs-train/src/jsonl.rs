//! JSON Lines many-task data: one object per line,
//! `{"task": "u1", "text": "…", "label": 1, "timestamp": 881250949}` (`timestamp` optional,
//! other keys ignored). Blank lines are skipped; every other line is a row, loaded or reported.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::{DataError, Example, LoadReport, Loaded, TaskDataset};

/// Loads a JSONL file. See [`read_jsonl`].
pub fn load_jsonl(path: impl AsRef<Path>) -> Result<Loaded, DataError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| DataError::io(path, None, e))?;
    read_jsonl(BufReader::new(file), path)
}

/// Reads JSONL rows from `reader`; `path` names the source in the report and in errors.
///
/// A row that is not valid UTF-8 or JSON, lacks `task`/`text`/`label`, has a value of the
/// wrong type, an empty task or a non-finite label is counted in the report, not loaded.
/// Fails only on an I/O error or when no row is valid.
pub fn read_jsonl(mut reader: impl BufRead, path: impl AsRef<Path>) -> Result<Loaded, DataError> {
    let path = path.as_ref();
    let mut report = LoadReport::new(path);
    let mut examples = Vec::new();
    let mut buf = Vec::new();
    let mut line = 0;
    loop {
        buf.clear();
        line += 1;
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| DataError::io(path, Some(line), e))?;
        if n == 0 {
            break;
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            report.reject(line, "not valid UTF-8");
            continue;
        };
        let text = if line == 1 {
            text.trim_start_matches('\u{feff}')
        } else {
            text
        };
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Example>(text).map_err(|e| e.to_string()) {
            Ok(example) => match example.validate() {
                Ok(()) => {
                    report.accept();
                    examples.push(example);
                }
                Err(reason) => report.reject(line, reason),
            },
            Err(reason) => report.reject(line, reason),
        }
    }
    report.require_rows()?;
    Ok(Loaded {
        dataset: TaskDataset::from_examples(examples),
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn loads_rows_and_counts_malformed_ones() {
        let data = concat!(
            "{\"task\":\"u1\",\"text\":\"a\",\"label\":1}\n",
            "\n",
            "{\"task\":\"u1\",\"text\":\"b\",\"label\":0,\"timestamp\":5,\"extra\":true}\r\n",
            "not json\n",
            "{\"task\":\"u2\",\"text\":\"c\"}\n",
            "{\"task\":\"\",\"text\":\"d\",\"label\":1}\n",
            "{\"task\":7,\"text\":\"e\",\"label\":1}\n",
            "{\"task\":\"u2\",\"text\":\"f\",\"label\":1e300}\n",
            "{\"task\":\"u2\",\"text\":\"g\",\"label\":0}",
        );
        let mut bytes = data.as_bytes().to_vec();
        bytes.extend_from_slice(b"\n{\"task\":\"u3\",\"text\":\"\xff\",\"label\":0}\n");
        let loaded = read_jsonl(&bytes[..], "mem.jsonl").unwrap();
        let r = &loaded.report;
        assert_eq!((r.rows, r.loaded, r.malformed_total), (9, 3, 6), "{r}");
        let lines: Vec<usize> = r.malformed.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [4, 5, 6, 7, 8, 10]);
        assert!(r.malformed[1].1.contains("missing field `label`"), "{r}");
        assert!(r.malformed[2].1.contains("empty task"), "{r}");
        assert!(r.malformed[4].1.contains("finite"), "{r}");
        assert!(r.malformed[5].1.contains("UTF-8"), "{r}");

        let ds = &loaded.dataset;
        assert_eq!(ds.task_names().collect::<Vec<_>>(), ["u1", "u2"]);
        let u1 = ds.task("u1").unwrap().examples();
        assert_eq!(u1[1].timestamp, Some(5));
        assert_eq!(u1[1].label, 0.0);
        assert_eq!(u1[0].timestamp, None);
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.jsonl");
        let err = load_jsonl(&missing).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }));
        assert!(err.to_string().contains("missing.jsonl"), "{err}");

        let bad = dir.path().join("bad.jsonl");
        let mut f = File::create(&bad).unwrap();
        writeln!(f, "{{\"task\":\"u\"}}").unwrap();
        drop(f);
        let err = load_jsonl(&bad).unwrap_err();
        assert!(matches!(
            err,
            DataError::NoValidRows {
                rows: 1,
                malformed: 1,
                ..
            }
        ));
        let msg = err.to_string();
        assert!(msg.contains("bad.jsonl") && msg.contains("line 1"), "{msg}");

        let ok = dir.path().join("ok.jsonl");
        std::fs::write(&ok, "\u{feff}{\"task\":\"u\",\"text\":\"x\",\"label\":1}\n").unwrap();
        let loaded = load_jsonl(&ok).unwrap();
        assert!(loaded.report.is_clean());
        assert_eq!(loaded.report.path, ok);
    }
}

//! CSV many-task data (RFC 4180: quoted fields may hold commas, quotes and newlines): a header
//! naming `task`, `text` and `label` columns, in any order, plus an optional `timestamp`
//! column; other columns are ignored. Header names match case-insensitively, trimmed.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::{DataError, Example, LoadReport, Loaded, TaskDataset};

/// Loads a CSV file. See [`read_csv`].
pub fn load_csv(path: impl AsRef<Path>) -> Result<Loaded, DataError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| DataError::io(path, None, e))?;
    read_csv(file, path)
}

/// Reads CSV rows from `reader`; `path` names the source in the report and in errors.
///
/// Fails on an empty input, a header without `task`, `text` or `label`, an I/O error, or when
/// no row is valid. A row with the wrong number of fields, a non-UTF-8 field, an unparsable
/// label or timestamp, an empty task or a non-finite label is counted in the report instead.
/// An empty `timestamp` field means "no timestamp". The input is read whole before parsing.
pub fn read_csv(mut reader: impl Read, path: impl AsRef<Path>) -> Result<Loaded, DataError> {
    let path = path.as_ref();
    // Held whole so reported line numbers can be made exact (see `line_of`).
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::io(path, None, e))?;
    let mut rdr = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(&bytes[..]);
    let header = rdr.byte_headers().map_err(|e| csv_fatal(path, e))?.clone();
    if header.is_empty() {
        return Err(DataError::MissingHeader { path: path.into() });
    }
    let names: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = String::from_utf8_lossy(h);
            let h = if i == 0 {
                h.trim_start_matches('\u{feff}')
            } else {
                &h
            };
            h.trim().to_ascii_lowercase()
        })
        .collect();
    let header_line = line_of(&bytes, header.position()).max(1);
    let column = |name: &str| names.iter().position(|n| n == name);
    let required = |name: &str| {
        column(name).ok_or_else(|| DataError::MissingColumn {
            path: path.into(),
            line: header_line,
            column: name.into(),
            found: names.join(","),
        })
    };
    let (task_col, text_col, label_col) =
        (required("task")?, required("text")?, required("label")?);
    let time_col = column("timestamp");

    let mut report = LoadReport::new(path);
    let mut examples = Vec::new();
    for record in rdr.byte_records() {
        let record = match record {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), ::csv::ErrorKind::Io(_)) => {
                return Err(csv_fatal(path, e))
            }
            Err(e) => {
                let line = line_of(&bytes, e.position());
                report.reject(line, e.to_string());
                continue;
            }
        };
        let line = line_of(&bytes, record.position());
        if record.len() != names.len() {
            report.reject(
                line,
                format!("expected {} fields, found {}", names.len(), record.len()),
            );
            continue;
        }
        let field = |i: usize| {
            std::str::from_utf8(&record[i])
                .map_err(|_| format!("field `{}` is not valid UTF-8", names[i]))
        };
        let parsed = (|| -> Result<Example, String> {
            let label = field(label_col)?;
            let label: f32 = label
                .trim()
                .parse()
                .map_err(|_| format!("label is not a number: {label:?}"))?;
            let timestamp = match time_col {
                Some(c) => {
                    let t = field(c)?.trim();
                    if t.is_empty() {
                        None
                    } else {
                        Some(
                            t.parse()
                                .map_err(|_| format!("timestamp is not an integer: {t:?}"))?,
                        )
                    }
                }
                None => None,
            };
            let example = Example {
                task: field(task_col)?.to_string(),
                text: field(text_col)?.to_string(),
                label,
                timestamp,
            };
            example.validate()?;
            Ok(example)
        })();
        match parsed {
            Ok(example) => {
                report.accept();
                examples.push(example);
            }
            Err(reason) => report.reject(line, reason),
        }
    }
    report.require_rows()?;
    Ok(Loaded {
        dataset: TaskDataset::from_examples(examples),
        report,
    })
}

/// The 1-based line a record starts on. The csv crate records a position before skipping the
/// blank lines that precede a record, so step over those line breaks from its byte offset.
fn line_of(bytes: &[u8], position: Option<&::csv::Position>) -> usize {
    let Some(p) = position else { return 0 };
    let start = (p.byte() as usize).min(bytes.len());
    let skipped = bytes[start..]
        .iter()
        .take_while(|&&b| b == b'\n' || b == b'\r')
        .filter(|&&b| b == b'\n')
        .count();
    p.line() as usize + skipped
}

fn csv_fatal(path: &Path, e: ::csv::Error) -> DataError {
    let line = e.position().map(|p| p.line() as usize);
    match e.into_kind() {
        ::csv::ErrorKind::Io(io) => DataError::io(path, line, io),
        other => DataError::io(
            path,
            line,
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{other:?}")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_rows_any_column_order_and_counts_malformed_ones() {
        let data = b"Label,text,TASK,timestamp,note\n\
            1,\"Toy Story (1995) | Animation, Comedy\",u1,10,x\n\
            0,\"multi\nline \"\"quoted\"\"\",u1,,y\n\
            \n\
            yes,bad label,u2,3,z\n\
            1,too few,u2\n\
            1,bad ts,u2,soon,z\n\
            1,empty task,,4,z\n\
            1,\xe9t\xe9,u2,5,z\n\
            0,ok,u2,6,z\n";
        let loaded = read_csv(&data[..], "mem.csv").unwrap();
        let r = &loaded.report;
        assert_eq!((r.rows, r.loaded, r.malformed_total), (8, 3, 5), "{r}");
        let lines: Vec<usize> = r.malformed.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [6, 7, 8, 9, 10], "{r}");
        assert!(r.malformed[0].1.contains("label is not a number"), "{r}");
        assert!(
            r.malformed[1].1.contains("expected 5 fields, found 3"),
            "{r}"
        );
        assert!(r.malformed[2].1.contains("timestamp"), "{r}");
        assert!(r.malformed[3].1.contains("empty task"), "{r}");
        assert!(r.malformed[4].1.contains("UTF-8"), "{r}");

        let u1 = loaded.dataset.task("u1").unwrap().examples();
        assert_eq!(u1[0].text, "Toy Story (1995) | Animation, Comedy");
        assert_eq!((u1[0].label, u1[0].timestamp), (1.0, Some(10)));
        assert_eq!(u1[1].text, "multi\nline \"quoted\"");
        assert_eq!(u1[1].timestamp, None);
        assert_eq!(loaded.dataset.task("u2").unwrap().examples().len(), 1);
    }

    #[test]
    fn fatal_errors_name_file_and_line() {
        let err = read_csv(&b"task,label\nu1,1\n"[..], "no_text.csv").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::MissingColumn { line: 1, .. }));
        assert!(
            msg.contains("no_text.csv:1") && msg.contains("`text`"),
            "{msg}"
        );

        let err = read_csv(&b""[..], "empty.csv").unwrap_err();
        assert!(matches!(err, DataError::MissingHeader { .. }), "{err}");

        let err = read_csv(&b"task,text,label\nu1,a,x\n"[..], "bad.csv").unwrap_err();
        assert!(
            matches!(err, DataError::NoValidRows { rows: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("line 2"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let err = load_csv(dir.path().join("nope.csv")).unwrap_err();
        assert!(err.to_string().contains("nope.csv"), "{err}");
    }

    #[test]
    fn loads_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.csv");
        std::fs::write(&path, "\u{feff}task,text,label\r\nu1,a,1\r\nu2,b,0\r\n").unwrap();
        let loaded = load_csv(&path).unwrap();
        assert!(loaded.report.is_clean(), "{}", loaded.report);
        assert_eq!(loaded.dataset.len(), 2);
    }
}

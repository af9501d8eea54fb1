//! MovieLens-100k as many-task data (docs/DESIGN.md §Data protocol): users are tasks, each rating
//! is an example with text `"<title> (<year>) | <genres>"`, label `1` when the rating is ≥ 4 (else
//! `0`) and the rating's timestamp.
//!
//! Two on-disk layouts are read, and give identical examples:
//! * canonical GroupLens: `u.data` (`user item rating timestamp`, tab-separated) and `u.item`
//!   (`id|title|release date|video release date|IMDb URL|` + 19 genre flags, **latin-1**);
//! * RecBole atomic files (what `scripts/seed-movielens.sh` seeds): `ml-100k.inter`
//!   (`user_id:token  item_id:token  rating:float  timestamp:float`) and `ml-100k.item`
//!   (`item_id:token  movie_title:token_seq  release_year:token  class:token_seq`, UTF-8,
//!   genres space-separated), tab-separated with a typed header.
//!
//! Titles: the canonical title carries its year (`"Toy Story (1995)"`, `"Seven (Se7en) (1995)"`,
//! `"Land Before Time III: The Time of the Great Giving (1995) (V)"`); RecBole split the last
//! parenthesised group off into `release_year` (so that last one has year `"V"`). Both are
//! brought back to one raw title and split by [`split_title_year`], so the year appears once.
//! Item 267 has no title or date (`"unknown"`; RecBole spells it `"unkonwn"`) and becomes
//! `"unknown | unknown"`.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::{DataError, Example, LoadReport, TaskDataset};

/// The 19 MovieLens-100k genres, in `u.item` flag order.
pub const GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// Which files a MovieLens-100k directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// GroupLens's `u.data` + `u.item`.
    Canonical,
    /// RecBole's `ml-100k.inter` + `ml-100k.item`.
    RecBole,
}

impl Layout {
    /// The (ratings, items) file names of this layout.
    pub fn files(self) -> (&'static str, &'static str) {
        match self {
            Layout::Canonical => ("u.data", "u.item"),
            Layout::RecBole => ("ml-100k.inter", "ml-100k.item"),
        }
    }

    /// The layout whose two files are both in `dir`; the canonical one when both are.
    pub fn detect(dir: impl AsRef<Path>) -> Result<Layout, DataError> {
        let dir = dir.as_ref();
        [Layout::Canonical, Layout::RecBole]
            .into_iter()
            .find(|layout| {
                let (ratings, items) = layout.files();
                dir.join(ratings).is_file() && dir.join(items).is_file()
            })
            .ok_or_else(|| DataError::UnknownLayout { dir: dir.into() })
    }
}

/// A loaded MovieLens-100k directory.
#[derive(Debug, Clone, PartialEq)]
pub struct MovieLens {
    /// One task per user, one example per rating, in the ratings file's order within a user.
    pub dataset: TaskDataset,
    /// The layout read.
    pub layout: Layout,
    /// The ratings file's report (`loaded` = ratings kept).
    pub ratings: LoadReport,
    /// The items file's report (`loaded` = movies kept).
    pub items: LoadReport,
}

impl MovieLens {
    /// Whether both files loaded without a malformed row.
    pub fn is_clean(&self) -> bool {
        self.ratings.is_clean() && self.items.is_clean()
    }
}

/// A movie's title, year and genres, as they appear in an example's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movie {
    /// Title without the year group.
    pub title: String,
    /// Release year, from the title or else the release date.
    pub year: Option<u16>,
    /// Genres, in [`GENRES`] order.
    pub genres: Vec<&'static str>,
}

impl Movie {
    /// `"<title> (<year>) | <g1>, <g2>"`; the year part is left out when unknown, and the
    /// `" | …"` part when the movie has no genre.
    pub fn text(&self) -> String {
        let mut s = self.title.clone();
        if let Some(year) = self.year {
            s.push_str(&format!(" ({year})"));
        }
        if !self.genres.is_empty() {
            s.push_str(" | ");
            s.push_str(&self.genres.join(", "));
        }
        s
    }
}

/// The label of a rating: `1.0` when `rating ≥ 4`, else `0.0`.
pub fn rating_label(rating: f32) -> f32 {
    if rating >= 4.0 {
        1.0
    } else {
        0.0
    }
}

/// Splits a MovieLens title into title and year: the last `(yyyy)` group among the title's
/// trailing parenthesised groups is the year and is removed; groups after it stay
/// (`"Seven (Se7en) (1995)"` → `("Seven (Se7en)", 1995)`,
/// `"… Giving (1995) (V)"` → `("… Giving (V)", 1995)`). A title without one is kept whole.
pub fn split_title_year(raw: &str) -> (String, Option<u16>) {
    let raw = raw.trim();
    let mut end = raw.len();
    // Walk the trailing "(…)" groups right to left until one is a year.
    while raw[..end].ends_with(')') {
        let Some(open) = raw[..end].rfind('(') else {
            break;
        };
        let inner = &raw[open + 1..end - 1];
        if let Some(year) = parse_year(inner) {
            let title = raw[..open].trim_end();
            let rest = raw[end..].trim();
            let title = if rest.is_empty() {
                title.to_string()
            } else {
                format!("{title} {rest}")
            };
            return (title, Some(year));
        }
        end = raw[..open].trim_end().len();
    }
    (raw.to_string(), None)
}

fn parse_year(s: &str) -> Option<u16> {
    (s.len() == 4 && s.bytes().all(|c| c.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// The data directory root: `$LRS_DATA` if set, else `$HOME/.cache/lrs/data` (where
/// `scripts/seed-movielens.sh` writes `ml-100k/`); `None` when neither variable is set.
pub fn data_root() -> Option<PathBuf> {
    match std::env::var_os("LRS_DATA") {
        Some(root) if !root.is_empty() => Some(PathBuf::from(root)),
        _ => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/lrs/data")),
    }
}

/// `data_root()/ml-100k`, the default MovieLens-100k directory.
pub fn default_dir() -> Option<PathBuf> {
    data_root().map(|root| root.join("ml-100k"))
}

/// Loads a MovieLens-100k directory, detecting its [`Layout`].
///
/// Rows that do not parse, ratings outside 1–5, and ratings of an item missing from the item
/// file are counted in the reports, not loaded. Fails when the directory holds neither layout,
/// a file cannot be read, a RecBole header lacks a needed column, or a file has no valid row.
pub fn load_movielens(dir: impl AsRef<Path>) -> Result<MovieLens, DataError> {
    let dir = dir.as_ref();
    load_movielens_layout(dir, Layout::detect(dir)?)
}

/// Loads a MovieLens-100k directory in the given layout. See [`load_movielens`].
pub fn load_movielens_layout(
    dir: impl AsRef<Path>,
    layout: Layout,
) -> Result<MovieLens, DataError> {
    let dir = dir.as_ref();
    let (ratings_name, items_name) = layout.files();
    let items_path = dir.join(items_name);
    let items_text = read_text(&items_path)?;
    let (movies, items) = match layout {
        Layout::Canonical => parse_canonical_items(&items_text, &items_path),
        Layout::RecBole => parse_recbole_items(&items_text, &items_path)?,
    };
    items.require_rows()?;

    let ratings_path = dir.join(ratings_name);
    let ratings_text = read_text(&ratings_path)?;
    let (examples, ratings) = match layout {
        Layout::Canonical => parse_canonical_ratings(&ratings_text, &ratings_path, &movies),
        Layout::RecBole => parse_recbole_ratings(&ratings_text, &ratings_path, &movies)?,
    };
    ratings.require_rows()?;

    Ok(MovieLens {
        dataset: TaskDataset::from_examples(examples),
        layout,
        ratings,
        items,
    })
}

/// Reads a file as UTF-8 when it is valid UTF-8, else as latin-1 (GroupLens's `u.item`), where
/// each byte is the code point of the same value.
fn read_text(path: &Path) -> Result<String, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, None, e))?;
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|e| e.into_bytes().into_iter().map(char::from).collect()))
}

/// Numbered (1-based) non-blank lines.
fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty())
}

type Movies = HashMap<String, String>;

fn parse_canonical_items(text: &str, path: &Path) -> (Movies, LoadReport) {
    let mut report = LoadReport::new(path);
    let mut movies = Movies::new();
    for (line, row) in data_lines(text) {
        let parsed = (|| -> Result<(String, String), String> {
            let fields: Vec<&str> = row.split('|').collect();
            if fields.len() != 5 + GENRES.len() {
                return Err(format!(
                    "expected {} `|`-separated fields, found {}",
                    5 + GENRES.len(),
                    fields.len()
                ));
            }
            let id = item_id(fields[0])?;
            let (title, title_year) = split_title_year(fields[1]);
            let date = fields[2].trim();
            let date_year = if date.is_empty() {
                None
            } else {
                // dd-Mon-yyyy
                Some(
                    date.rsplit('-')
                        .next()
                        .and_then(parse_year)
                        .ok_or_else(|| format!("release date is not dd-Mon-yyyy: {date:?}"))?,
                )
            };
            let mut genres = Vec::new();
            for (flag, genre) in fields[5..].iter().zip(GENRES) {
                match flag.trim() {
                    "1" => genres.push(genre),
                    "0" => {}
                    other => return Err(format!("genre flag `{genre}` is not 0/1: {other:?}")),
                }
            }
            let movie = Movie {
                title,
                year: title_year.or(date_year),
                genres,
            };
            Ok((id, movie.text()))
        })();
        insert_movie(&mut movies, &mut report, line, parsed);
    }
    (movies, report)
}

fn parse_recbole_items(text: &str, path: &Path) -> Result<(Movies, LoadReport), DataError> {
    let mut lines = data_lines(text);
    let header = Header::parse(path, lines.next())?;
    let cols = header.require(&["item_id", "movie_title", "release_year", "class"])?;
    let mut report = LoadReport::new(path);
    let mut movies = Movies::new();
    for (line, row) in lines {
        let parsed = (|| -> Result<(String, String), String> {
            let fields = header.fields(row)?;
            let id = item_id(fields[cols[0]])?;
            let mut title = fields[cols[1]].trim();
            let mut year = fields[cols[2]].trim();
            // RecBole's spelling of item 267's placeholder title and year.
            if title == "unkonwn" {
                title = "unknown";
            }
            if year == "unkonwn" || year == "unknown" {
                year = "";
            }
            // Put the split-off last group back so both layouts share one title parser.
            let raw = if year.is_empty() {
                title.to_string()
            } else {
                format!("{title} ({year})")
            };
            let (title, year) = split_title_year(&raw);
            let mut flags = [false; GENRES.len()];
            for token in fields[cols[3]].split_whitespace() {
                let i = GENRES
                    .iter()
                    .position(|g| *g == token)
                    .ok_or_else(|| format!("unknown genre {token:?}"))?;
                flags[i] = true;
            }
            let genres = GENRES
                .iter()
                .zip(flags)
                .filter_map(|(g, on)| on.then_some(*g))
                .collect();
            Ok((
                id,
                Movie {
                    title,
                    year,
                    genres,
                }
                .text(),
            ))
        })();
        insert_movie(&mut movies, &mut report, line, parsed);
    }
    Ok((movies, report))
}

fn insert_movie(
    movies: &mut Movies,
    report: &mut LoadReport,
    line: usize,
    parsed: Result<(String, String), String>,
) {
    match parsed {
        Ok((id, text)) => match movies.entry(id) {
            Entry::Occupied(e) => {
                report.reject(line, format!("duplicate item id {}", e.key()));
            }
            Entry::Vacant(e) => {
                e.insert(text);
                report.accept();
            }
        },
        Err(reason) => report.reject(line, reason),
    }
}

fn parse_canonical_ratings(text: &str, path: &Path, movies: &Movies) -> (Vec<Example>, LoadReport) {
    let mut report = LoadReport::new(path);
    let mut examples = Vec::new();
    for (line, row) in data_lines(text) {
        let fields: Vec<&str> = row.split_whitespace().collect();
        let parsed = if fields.len() == 4 {
            rating_example(fields[0], fields[1], fields[2], fields[3], movies)
        } else {
            Err(format!(
                "expected 4 fields (user item rating timestamp), found {}",
                fields.len()
            ))
        };
        push_example(&mut examples, &mut report, line, parsed);
    }
    (examples, report)
}

fn parse_recbole_ratings(
    text: &str,
    path: &Path,
    movies: &Movies,
) -> Result<(Vec<Example>, LoadReport), DataError> {
    let mut lines = data_lines(text);
    let header = Header::parse(path, lines.next())?;
    let c = header.require(&["user_id", "item_id", "rating", "timestamp"])?;
    let mut report = LoadReport::new(path);
    let mut examples = Vec::new();
    for (line, row) in lines {
        let parsed = header
            .fields(row)
            .and_then(|f| rating_example(f[c[0]], f[c[1]], f[c[2]], f[c[3]], movies));
        push_example(&mut examples, &mut report, line, parsed);
    }
    Ok((examples, report))
}

fn push_example(
    examples: &mut Vec<Example>,
    report: &mut LoadReport,
    line: usize,
    parsed: Result<Example, String>,
) {
    match parsed.and_then(|e| e.validate().map(|()| e)) {
        Ok(example) => {
            report.accept();
            examples.push(example);
        }
        Err(reason) => report.reject(line, reason),
    }
}

fn rating_example(
    user: &str,
    item: &str,
    rating: &str,
    timestamp: &str,
    movies: &Movies,
) -> Result<Example, String> {
    let user = user.trim();
    if user.is_empty() {
        return Err("empty user id".into());
    }
    let item = item_id(item)?;
    let text = movies
        .get(&item)
        .ok_or_else(|| format!("item {item} is not in the item file"))?;
    let r: f32 = rating
        .trim()
        .parse()
        .map_err(|_| format!("rating is not a number: {rating:?}"))?;
    // MovieLens-100k ratings are whole stars, 1 to 5.
    if !(1.0..=5.0).contains(&r) || r.fract() != 0.0 {
        return Err(format!("rating is not a whole number in 1..=5: {rating:?}"));
    }
    Ok(Example {
        task: user.to_string(),
        text: text.clone(),
        label: rating_label(r),
        timestamp: Some(parse_timestamp(timestamp)?),
    })
}

fn item_id(field: &str) -> Result<String, String> {
    let id = field.trim();
    if id.is_empty() {
        Err("empty item id".into())
    } else {
        Ok(id.to_string())
    }
}

/// An integer timestamp, also accepted in RecBole's `float` spelling when it is whole
/// (`"881250949"`, `"881250949.0"`).
fn parse_timestamp(field: &str) -> Result<i64, String> {
    let t = field.trim();
    if let Ok(v) = t.parse::<i64>() {
        return Ok(v);
    }
    match t.parse::<f64>() {
        Ok(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Ok(v as i64),
        _ => Err(format!("timestamp is not a whole number: {t:?}")),
    }
}

/// A RecBole atomic-file header: tab-separated `name:type` columns.
struct Header<'a> {
    path: &'a Path,
    line: usize,
    names: Vec<&'a str>,
}

impl<'a> Header<'a> {
    fn parse(path: &'a Path, first: Option<(usize, &'a str)>) -> Result<Self, DataError> {
        let (line, row) = first.ok_or_else(|| DataError::MissingHeader { path: path.into() })?;
        let row = row.trim_start_matches('\u{feff}');
        let names = row
            .split('\t')
            .map(|col| col.split(':').next().unwrap_or(col).trim())
            .collect();
        Ok(Header { path, line, names })
    }

    /// The indices of the `wanted` columns, in order.
    fn require(&self, wanted: &[&str]) -> Result<Vec<usize>, DataError> {
        wanted
            .iter()
            .map(|w| {
                self.names
                    .iter()
                    .position(|n| n == w)
                    .ok_or_else(|| DataError::MissingColumn {
                        path: self.path.into(),
                        line: self.line,
                        column: (*w).into(),
                        found: self.names.join(","),
                    })
            })
            .collect()
    }

    fn fields<'r>(&self, row: &'r str) -> Result<Vec<&'r str>, String> {
        let fields: Vec<&str> = row.split('\t').collect();
        if fields.len() == self.names.len() {
            Ok(fields)
        } else {
            Err(format!(
                "expected {} tab-separated fields, found {}",
                self.names.len(),
                fields.len()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A canonical `u.item` row: `id|title|date||url|` + flags for `genres`.
    fn item_row(id: u32, title: &[u8], date: &str, genres: &[&str]) -> Vec<u8> {
        let mut row = format!("{id}|").into_bytes();
        row.extend_from_slice(title);
        row.extend_from_slice(format!("|{date}||http://us.imdb.com/M/x").as_bytes());
        for g in GENRES {
            row.extend_from_slice(if genres.contains(&g) { b"|1" } else { b"|0" });
        }
        row.push(b'\n');
        row
    }

    /// Movies of both layouts' fixtures, and the text each must become.
    const EXPECTED: [(&str, &str); 6] = [
        ("1", "Toy Story (1995) | Animation, Children's, Comedy"),
        ("11", "Seven (Se7en) (1995) | Crime, Thriller"),
        ("267", "unknown | unknown"),
        ("543", "Misérables, Les (1995) | Drama, Musical"),
        (
            "1412",
            "Land Before Time III: The Time of the Great Giving (V) (1995) | Animation, Children's",
        ),
        ("999", "No Year Movie (1990) | Drama"),
    ];

    /// Ratings shared by both fixtures: (user, item, rating, timestamp).
    const RATINGS: [(&str, &str, u8, i64); 6] = [
        ("196", "1", 3, 881250949),
        ("22", "543", 4, 881250950),
        ("196", "1412", 5, 881250948),
        ("22", "267", 1, 881250951),
        ("196", "11", 4, 881250949),
        ("7", "999", 2, 881250952),
    ];

    fn write_canonical(dir: &Path) {
        let mut items = Vec::new();
        items.extend(item_row(
            1,
            b"Toy Story (1995)",
            "01-Jan-1995",
            &["Animation", "Children's", "Comedy"],
        ));
        items.extend(item_row(
            11,
            b"Seven (Se7en) (1995)",
            "01-Jan-1995",
            &["Crime", "Thriller"],
        ));
        items.extend(b"267|unknown||||1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n");
        // latin-1 é, as GroupLens ships it.
        items.extend(item_row(
            543,
            b"Mis\xe9rables, Les (1995)",
            "01-Jan-1995",
            &["Drama", "Musical"],
        ));
        items.extend(item_row(
            1412,
            b"Land Before Time III: The Time of the Great Giving (1995) (V)",
            "01-Jan-1995",
            &["Animation", "Children's"],
        ));
        items.extend(item_row(999, b"No Year Movie", "15-Mar-1990", &["Drama"]));
        items.extend(b"5|Short row|01-Jan-1995\n");
        let mut bad_flag = item_row(6, b"Bad Flag (1995)", "01-Jan-1995", &[]);
        let n = bad_flag.len();
        bad_flag[n - 2] = b'x';
        items.extend(bad_flag);
        items.extend(item_row(1, b"Duplicate (1995)", "", &[]));
        std::fs::write(dir.join("u.item"), items).unwrap();

        let mut data = String::new();
        for (u, i, r, t) in RATINGS {
            data.push_str(&format!("{u}\t{i}\t{r}\t{t}\n"));
        }
        data.push_str("196\t4242\t3\t881250949\n"); // unknown item
        data.push_str("196\t1\t7\t881250949\n"); // rating out of range
        data.push_str("196\t1\t3\n"); // too few fields
        data.push_str("196\t1\t3\tyesterday\n"); // bad timestamp
        std::fs::write(dir.join("u.data"), data).unwrap();
    }

    fn write_recbole(dir: &Path) {
        let items = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n\
            1\tToy Story\t1995\tAnimation Children's Comedy\n\
            11\tSeven (Se7en)\t1995\tCrime Thriller\n\
            267\tunkonwn\tunkonwn\tunknown\n\
            543\tMisérables, Les\t1995\tMusical Drama\n\
            1412\tLand Before Time III: The Time of the Great Giving (1995)\tV\tAnimation Children's\n\
            999\tNo Year Movie\t1990\tDrama\n\
            6\tBad Genre\t1995\tSlapstick\n\
            7\tToo\tFew\n";
        std::fs::write(dir.join("ml-100k.item"), items).unwrap();
        let mut inter =
            String::from("user_id:token\titem_id:token\trating:float\ttimestamp:float\n");
        for (k, (u, i, r, t)) in RATINGS.iter().enumerate() {
            // RecBole writes floats; accept both spellings.
            if k % 2 == 0 {
                inter.push_str(&format!("{u}\t{i}\t{r}\t{t}\n"));
            } else {
                inter.push_str(&format!("{u}\t{i}\t{r}.0\t{t}.0\n"));
            }
        }
        inter.push_str("196\t4242\t3\t881250949\n");
        inter.push_str("196\t1\t3.5\t881250949\n");
        std::fs::write(dir.join("ml-100k.inter"), inter).unwrap();
    }

    fn check(ml: &MovieLens) {
        let ds = &ml.dataset;
        assert_eq!(ds.task_names().collect::<Vec<_>>(), ["7", "22", "196"]);
        assert_eq!(ds.num_examples(), RATINGS.len());
        assert_eq!(ml.items.loaded, EXPECTED.len(), "{}", ml.items);
        for (user, item, rating, ts) in RATINGS {
            let text = EXPECTED.iter().find(|(id, _)| *id == item).unwrap().1;
            let ex = ds
                .task(user)
                .unwrap()
                .examples()
                .iter()
                .find(|e| e.timestamp == Some(ts) && e.text == text)
                .unwrap_or_else(|| panic!("no example {user} {item} {text:?}"));
            assert_eq!(ex.label, if rating >= 4 { 1.0 } else { 0.0 });
        }
        // File order within a user (timestamps 949, 948, 949).
        let u196: Vec<i64> = ds
            .task("196")
            .unwrap()
            .examples()
            .iter()
            .map(|e| e.timestamp.unwrap())
            .collect();
        assert_eq!(u196, [881250949, 881250948, 881250949]);
    }

    #[test]
    fn canonical_layout_latin1_titles_and_malformed_rows() {
        let dir = tempfile::tempdir().unwrap();
        write_canonical(dir.path());
        assert_eq!(Layout::detect(dir.path()).unwrap(), Layout::Canonical);
        let ml = load_movielens(dir.path()).unwrap();
        assert_eq!(ml.layout, Layout::Canonical);
        check(&ml);
        let items: Vec<usize> = ml.items.malformed.iter().map(|(l, _)| *l).collect();
        assert_eq!(items, [7, 8, 9], "{}", ml.items);
        assert!(ml.items.malformed[1].1.contains("not 0/1"), "{}", ml.items);
        assert!(
            ml.items.malformed[2].1.contains("duplicate item id 1"),
            "{}",
            ml.items
        );
        let r = &ml.ratings;
        assert_eq!((r.rows, r.loaded, r.malformed_total), (10, 6, 4), "{r}");
        assert!(
            r.malformed[0]
                .1
                .contains("item 4242 is not in the item file"),
            "{r}"
        );
        assert!(r.malformed[1].1.contains("1..=5"), "{r}");
        assert!(!ml.is_clean());
    }

    #[test]
    fn recbole_layout_matches_canonical_texts() {
        let dir = tempfile::tempdir().unwrap();
        write_recbole(dir.path());
        assert_eq!(Layout::detect(dir.path()).unwrap(), Layout::RecBole);
        let ml = load_movielens(dir.path()).unwrap();
        assert_eq!(ml.layout, Layout::RecBole);
        check(&ml);
        let items: Vec<usize> = ml.items.malformed.iter().map(|(l, _)| *l).collect();
        assert_eq!(items, [8, 9], "{}", ml.items);
        assert!(
            ml.items.malformed[0].1.contains("Slapstick"),
            "{}",
            ml.items
        );
        assert_eq!(ml.ratings.malformed_total, 2, "{}", ml.ratings);

        let canonical = tempfile::tempdir().unwrap();
        write_canonical(canonical.path());
        assert_eq!(
            load_movielens(canonical.path()).unwrap().dataset,
            ml.dataset
        );
    }

    #[test]
    fn fatal_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_movielens(dir.path()).unwrap_err();
        assert!(matches!(err, DataError::UnknownLayout { .. }), "{err}");
        assert!(err.to_string().contains("seed-movielens.sh"), "{err}");

        std::fs::write(
            dir.path().join("ml-100k.item"),
            "item_id:token\ttitle:token_seq\n1\tX\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("ml-100k.inter"), "").unwrap();
        let err = load_movielens(dir.path()).unwrap_err();
        assert!(
            matches!(&err, DataError::MissingColumn { column, line: 1, .. } if column == "movie_title"),
            "{err}"
        );
        assert!(err.to_string().contains("ml-100k.item:1"), "{err}");

        write_recbole(dir.path());
        std::fs::write(dir.path().join("ml-100k.inter"), "").unwrap();
        let err = load_movielens(dir.path()).unwrap_err();
        assert!(matches!(err, DataError::MissingHeader { .. }), "{err}");

        std::fs::write(
            dir.path().join("ml-100k.inter"),
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t4242\t3\t1\n",
        )
        .unwrap();
        let err = load_movielens(dir.path()).unwrap_err();
        assert!(
            matches!(err, DataError::NoValidRows { rows: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn titles_and_years() {
        assert_eq!(
            split_title_year("Toy Story (1995)"),
            ("Toy Story".into(), Some(1995))
        );
        assert_eq!(
            split_title_year(" Seven (Se7en) (1995) "),
            ("Seven (Se7en)".into(), Some(1995))
        );
        assert_eq!(
            split_title_year("Land Before Time III (1995) (V)"),
            ("Land Before Time III (V)".into(), Some(1995))
        );
        assert_eq!(split_title_year("1900 (1900)"), ("1900".into(), Some(1900)));
        assert_eq!(split_title_year("unknown"), ("unknown".into(), None));
        assert_eq!(split_title_year("(V)"), ("(V)".into(), None));
        assert_eq!(
            split_title_year("Odd ((1995)"),
            ("Odd (".into(), Some(1995))
        );
        assert_eq!(rating_label(4.0), 1.0);
        assert_eq!(rating_label(3.0), 0.0);
        let movie = Movie {
            title: "No Genre".into(),
            year: None,
            genres: vec![],
        };
        assert_eq!(movie.text(), "No Genre");
    }

    #[test]
    fn data_root_prefers_lrs_data() {
        // Read-only check against whatever the environment holds.
        match std::env::var_os("LRS_DATA") {
            Some(root) if !root.is_empty() => {
                assert_eq!(default_dir().unwrap(), PathBuf::from(root).join("ml-100k"))
            }
            _ => {
                if let Some(home) = std::env::var_os("HOME") {
                    assert_eq!(
                        default_dir().unwrap(),
                        PathBuf::from(home).join(".cache/lrs/data/ml-100k")
                    );
                }
            }
        }
    }
}

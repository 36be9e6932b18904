//! CSV import of contacts and do-not-call numbers, pure and streaming: rows are read one at a
//! time from the file's bytes, checked, and sorted into good rows and bad rows with their line
//! number and reason. The store then removes what only it can judge (numbers already in the list or on
//! the do-not-call list, [`Validated::exclude`]) and inserts the rest.
//!
//! # File format
//!
//! The first row is the header. Columns `phone` (required), `name`, `timezone` (IANA name) and
//! `priority` (integer) are contact fields; every other column goes into the contact's custom
//! fields (JSON, by column name; empty cells are left out). A mapping renames file columns
//! first (`Mobile` → `phone`). Header names are trimmed and compared case-insensitively for the
//! four known fields. Rows may have fewer or more cells than the header (missing cells are
//! empty, extra ones ignored).
//!
//! # What refuses the whole file (nothing is imported)
//!
//! Bytes that are not UTF-8, no `phone` column, more data rows than the limit, a CSV syntax
//! error, or a mapping naming a column that is not in the header: [`ImportError`].
//!
//! # Bad rows (reported, the others still imported)
//!
//! `invalid number`, `duplicate in file`, `duplicate in list`, `on the do-not-call list`,
//! `bad time zone`, `bad priority` ([`BadReason`]).

use super::phone::{self, Region};
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;

/// Default most data rows in one file (`[campaigns] import_max_rows`).
pub const DEFAULT_MAX_ROWS: usize = 100_000;
/// Lowest and highest contact priority accepted.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i64> = -1_000_000..=1_000_000;

/// The template served at `GET /v1/contact-lists/template.csv`.
pub const TEMPLATE_CSV: &str = "phone,name,timezone,priority,account_id\n\
+12125550123,Ada Lovelace,America/New_York,10,A-1001\n\
(415) 555-0199,Grace Hopper,,0,A-1002\n\
+442079460018,Alan Turing,Europe/London,0,A-1003\n";

/// Why a whole file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The file is empty (no header row).
    #[error("the file is empty: a header row is required")]
    Empty,
    /// Bytes that are not UTF-8.
    #[error("the file is not UTF-8 (line {line})")]
    NotUtf8 {
        /// The line where the bad bytes are.
        line: u64,
    },
    /// No `phone` column after mapping.
    #[error("the header has no phone column (columns: {columns})")]
    NoPhoneColumn {
        /// The header as read, comma-separated.
        columns: String,
    },
    /// More data rows than allowed.
    #[error("the file has more than {limit} rows")]
    TooManyRows {
        /// The limit.
        limit: usize,
    },
    /// A CSV syntax error.
    #[error("malformed CSV at line {line}: {message}")]
    Malformed {
        /// The line.
        line: u64,
        /// What the parser said.
        message: String,
    },
    /// A mapping names a column absent from the header.
    #[error("the mapping names column {0:?}, which is not in the header")]
    UnknownMappedColumn(String),
}

/// Why one row was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
pub enum BadReason {
    /// The phone cell is not a valid number.
    #[serde(rename = "invalid number")]
    InvalidNumber,
    /// The same number (after normalisation) appeared on an earlier line.
    #[serde(rename = "duplicate in file")]
    DuplicateInFile,
    /// The list has the number already.
    #[serde(rename = "duplicate in list")]
    DuplicateInList,
    /// The number is on the do-not-call list.
    #[serde(rename = "on the do-not-call list")]
    OnDnc,
    /// The timezone cell is not an IANA zone.
    #[serde(rename = "bad time zone")]
    BadTimeZone,
    /// The priority cell is not an integer in range.
    #[serde(rename = "bad priority")]
    BadPriority,
}

impl BadReason {
    /// The reason as reported.
    pub fn as_str(self) -> &'static str {
        match self {
            BadReason::InvalidNumber => "invalid number",
            BadReason::DuplicateInFile => "duplicate in file",
            BadReason::DuplicateInList => "duplicate in list",
            BadReason::OnDnc => "on the do-not-call list",
            BadReason::BadTimeZone => "bad time zone",
            BadReason::BadPriority => "bad priority",
        }
    }
}

/// A refused row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BadRow {
    /// Line of the file where the row starts (the header is line 1).
    pub line: u64,
    /// Why.
    #[schema(value_type = String)]
    pub reason: BadReason,
    /// Details (the parser's message, the earlier line of a duplicate, the value).
    pub detail: String,
}

/// A row that passed the file checks.
#[derive(Debug, Clone, PartialEq)]
pub struct GoodRow {
    /// Line of the file.
    pub line: u64,
    /// E.164.
    pub phone: String,
    /// Name, if given.
    pub name: Option<String>,
    /// The contact's zone: given, else derived from the number, else `None` (the campaign's
    /// default applies).
    pub timezone: Option<String>,
    /// Priority (default 0).
    pub priority: i64,
    /// Other columns.
    pub custom: serde_json::Map<String, serde_json::Value>,
}

/// Result of reading a file: good rows in file order, bad rows by line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Validated {
    /// Data rows read.
    pub rows: u64,
    /// Rows to import.
    pub good: Vec<GoodRow>,
    /// Rows refused.
    pub bad: Vec<BadRow>,
}

impl Validated {
    /// Moves good rows that `verdict` refuses (by their E.164 number) to the bad rows, and
    /// keeps bad rows sorted by line.
    pub fn exclude(&mut self, mut verdict: impl FnMut(&str) -> Option<BadReason>) {
        let mut kept = Vec::with_capacity(self.good.len());
        let mut moved = false;
        for row in self.good.drain(..) {
            match verdict(&row.phone) {
                Some(reason) => {
                    moved = true;
                    self.bad.push(BadRow {
                        line: row.line,
                        reason,
                        detail: row.phone,
                    });
                }
                None => kept.push(row),
            }
        }
        self.good = kept;
        if moved {
            self.bad.sort_by_key(|b| b.line);
        }
    }
}

/// How to read a contacts file.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Region of numbers written without a country code.
    pub default_region: Region,
    /// Most data rows.
    pub max_rows: usize,
    /// File column → field or custom name, applied to the header before anything else.
    pub mapping: HashMap<String, String>,
}

/// Parses a mapping parameter: `Mobile:phone,Zone:timezone` (file column, then field).
pub fn parse_mapping(s: &str) -> Result<HashMap<String, String>, String> {
    let mut map = HashMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (from, to) = pair
            .split_once(':')
            .ok_or_else(|| format!("mapping entry {pair:?} is not column:field"))?;
        let (from, to) = (from.trim(), to.trim());
        if from.is_empty() || to.is_empty() {
            return Err(format!("mapping entry {pair:?} has an empty side"));
        }
        map.insert(from.to_owned(), to.to_owned());
    }
    Ok(map)
}

/// Which contact field a header column feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    Phone,
    Name,
    Timezone,
    Priority,
    Reason,
    Custom(String),
}

/// Line numbers of byte offsets, for offsets met in increasing order. The CSV parser's own
/// line count leaves out the blank lines it skips; a person looking for a row in the file
/// counts them.
struct Lines<'a> {
    input: &'a [u8],
    offset: usize,
    line: u64,
}

impl Lines<'_> {
    fn at(&mut self, byte: u64) -> u64 {
        let mut byte = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.input.len());
        // The parser's record position may sit before the blank lines it skipped.
        while matches!(self.input.get(byte), Some(b'\n' | b'\r')) {
            byte += 1;
        }
        if byte > self.offset {
            self.line += memchr_count(&self.input[self.offset..byte]);
            self.offset = byte;
        }
        self.line
    }
}

fn memchr_count(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Reads the header and every row of a CSV file, calling `row` with the line, the header's
/// columns and the row's cells; stops at the row limit.
fn read_rows(
    input: &[u8],
    mapping: &HashMap<String, String>,
    max_rows: usize,
    mut row: impl FnMut(u64, &[Column], &csv::StringRecord),
) -> Result<u64, ImportError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut record = csv::ByteRecord::new();
    let mut lines = Lines {
        input,
        offset: 0,
        line: 1,
    };
    let read = |rdr: &mut csv::Reader<&[u8]>, record: &mut csv::ByteRecord| {
        rdr.read_byte_record(record).map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            ImportError::Malformed {
                line,
                message: e.to_string(),
            }
        })
    };
    if !read(&mut rdr, &mut record)? {
        return Err(ImportError::Empty);
    }
    let header = to_text(&record)?;
    let mut names: Vec<String> = header.iter().map(|h| h.trim().to_owned()).collect();
    if let Some(first) = names.first_mut()
        && let Some(stripped) = first.strip_prefix('\u{feff}')
    {
        *first = stripped.trim().to_owned();
    }
    for from in mapping.keys() {
        if !names.iter().any(|n| n == from) {
            return Err(ImportError::UnknownMappedColumn(from.clone()));
        }
    }
    let columns: Vec<Column> = names
        .iter()
        .map(|n| {
            let n = mapping.get(n).cloned().unwrap_or_else(|| n.clone());
            match n.to_ascii_lowercase().as_str() {
                "phone" => Column::Phone,
                "name" => Column::Name,
                "timezone" => Column::Timezone,
                "priority" => Column::Priority,
                "reason" => Column::Reason,
                _ => Column::Custom(n),
            }
        })
        .collect();
    if !columns.contains(&Column::Phone) {
        return Err(ImportError::NoPhoneColumn {
            columns: names.join(","),
        });
    }
    let mut rows = 0u64;
    while read(&mut rdr, &mut record)? {
        // A blank line is no row.
        if record.len() == 1 && record.get(0).is_some_and(|c| c.is_empty()) {
            continue;
        }
        rows += 1;
        if rows > max_rows as u64 {
            return Err(ImportError::TooManyRows { limit: max_rows });
        }
        let line = lines.at(record.position().map(|p| p.byte()).unwrap_or(0));
        let text = csv::StringRecord::from_byte_record(std::mem::take(&mut record))
            .map_err(|_| ImportError::NotUtf8 { line })?;
        row(line, &columns, &text);
        record = text.into_byte_record();
    }
    Ok(rows)
}

fn to_text(record: &csv::ByteRecord) -> Result<csv::StringRecord, ImportError> {
    let line = record.position().map(|p| p.line()).unwrap_or(1);
    csv::StringRecord::from_byte_record(record.clone()).map_err(|_| ImportError::NotUtf8 { line })
}

/// Reads a contacts file: every row checked, bad rows reported with their line and reason.
pub fn validate_contacts(input: &[u8], opts: &ImportOptions) -> Result<Validated, ImportError> {
    let mut out = Validated::default();
    let mut seen: HashMap<String, u64> = HashMap::new();
    out.rows = read_rows(
        input,
        &opts.mapping,
        opts.max_rows,
        |line, columns, cells| {
            let mut phone_cell = "";
            let mut name = None;
            let mut tz_cell = "";
            let mut priority_cell = "";
            let mut custom = serde_json::Map::new();
            for (col, cell) in columns.iter().zip(cells.iter()) {
                let cell = cell.trim();
                match col {
                    Column::Phone => phone_cell = cell,
                    Column::Name if !cell.is_empty() => name = Some(cell.to_owned()),
                    Column::Timezone => tz_cell = cell,
                    Column::Priority => priority_cell = cell,
                    Column::Custom(k) if !cell.is_empty() => {
                        custom.insert(k.clone(), serde_json::Value::String(cell.to_owned()));
                    }
                    Column::Reason if !cell.is_empty() => {
                        custom.insert("reason".into(), serde_json::Value::String(cell.to_owned()));
                    }
                    _ => {}
                }
            }
            let mut bad = |reason, detail: String| {
                out.bad.push(BadRow {
                    line,
                    reason,
                    detail,
                })
            };
            let n = match phone::normalise(phone_cell, opts.default_region) {
                Ok(n) => n,
                Err(e) => return bad(BadReason::InvalidNumber, format!("{phone_cell:?}: {e}")),
            };
            let timezone = if tz_cell.is_empty() {
                phone::derive_zone(&n).map(str::to_owned)
            } else if let Some(tz) = phone::parse_zone(tz_cell) {
                Some(tz.name().to_owned())
            } else {
                return bad(BadReason::BadTimeZone, format!("{tz_cell:?}"));
            };
            let priority = if priority_cell.is_empty() {
                0
            } else {
                match priority_cell.parse::<i64>() {
                    Ok(p) if PRIORITY_RANGE.contains(&p) => p,
                    _ => return bad(BadReason::BadPriority, format!("{priority_cell:?}")),
                }
            };
            if let Some(first) = seen.get(&n.e164) {
                return bad(
                    BadReason::DuplicateInFile,
                    format!("{} already on line {first}", n.e164),
                );
            }
            seen.insert(n.e164.clone(), line);
            out.good.push(GoodRow {
                line,
                phone: n.e164,
                name,
                timezone,
                priority,
                custom,
            });
        },
    )?;
    Ok(out)
}

/// A number for the do-not-call list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DncRow {
    /// Line of the file.
    pub line: u64,
    /// E.164.
    pub phone: String,
    /// The `reason` cell, if any.
    pub reason: Option<String>,
}

/// Reads a do-not-call file (`phone` column, optional `reason`): invalid numbers and
/// duplicates in the file are reported; numbers already listed are not errors.
pub fn validate_dnc(
    input: &[u8],
    default_region: Region,
    max_rows: usize,
) -> Result<(Vec<DncRow>, Vec<BadRow>, u64), ImportError> {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let rows = read_rows(input, &HashMap::new(), max_rows, |line, columns, cells| {
        let mut phone_cell = "";
        let mut reason = None;
        for (col, cell) in columns.iter().zip(cells.iter()) {
            match col {
                Column::Phone => phone_cell = cell.trim(),
                Column::Reason if !cell.trim().is_empty() => reason = Some(cell.trim().to_owned()),
                _ => {}
            }
        }
        match phone::normalise(phone_cell, default_region) {
            Err(e) => bad.push(BadRow {
                line,
                reason: BadReason::InvalidNumber,
                detail: format!("{phone_cell:?}: {e}"),
            }),
            Ok(n) => {
                if let Some(first) = seen.get(&n.e164) {
                    bad.push(BadRow {
                        line,
                        reason: BadReason::DuplicateInFile,
                        detail: format!("{} already on line {first}", n.e164),
                    });
                } else {
                    seen.insert(n.e164.clone(), line);
                    good.push(DncRow {
                        line,
                        phone: n.e164,
                        reason,
                    });
                }
            }
        }
    })?;
    Ok((good, bad, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ImportOptions {
        ImportOptions {
            default_region: Region::parse("US").unwrap(),
            max_rows: DEFAULT_MAX_ROWS,
            mapping: HashMap::new(),
        }
    }

    fn reasons(v: &Validated) -> Vec<(u64, &'static str)> {
        v.bad.iter().map(|b| (b.line, b.reason.as_str())).collect()
    }

    #[test]
    fn template_imports_cleanly() {
        let v = validate_contacts(TEMPLATE_CSV.as_bytes(), &opts()).unwrap();
        assert_eq!(v.rows, 3);
        assert!(v.bad.is_empty(), "{:?}", v.bad);
        assert_eq!(v.good[1].phone, "+14155550199");
        assert_eq!(v.good[1].timezone.as_deref(), Some("America/Los_Angeles"));
        assert_eq!(v.good[0].priority, 10);
        assert_eq!(v.good[0].custom["account_id"], "A-1001");
    }

    #[test]
    fn every_file_reason_with_its_line() {
        let csv = "phone,name,timezone,priority,plan\n\
                   +12125550101,A,,1,gold\n\
                   not a number,B,,,\n\
                   212-555-0101,C,,,\n\
                   +12125550102,D,Mars/Olympus,,\n\
                   +12125550103,E,,high,\n\
                   \n\
                   +12125550104,\"F, with comma\",Europe/Paris,-5,\n";
        let v = validate_contacts(csv.as_bytes(), &opts()).unwrap();
        assert_eq!(v.rows, 6);
        assert_eq!(
            reasons(&v),
            vec![
                (3, "invalid number"),
                (4, "duplicate in file"),
                (5, "bad time zone"),
                (6, "bad priority"),
            ]
        );
        assert!(v.bad[1].detail.contains("line 2"), "{}", v.bad[1].detail);
        assert_eq!(v.good.len(), 2);
        assert_eq!(v.good[1].line, 8);
        assert_eq!(v.good[1].name.as_deref(), Some("F, with comma"));
        assert_eq!(v.good[1].timezone.as_deref(), Some("Europe/Paris"));
        assert_eq!(v.good[1].priority, -5);
        assert_eq!(v.good[0].custom["plan"], "gold");
        assert!(v.good[1].custom.is_empty());
    }

    #[test]
    fn store_reasons_are_merged_by_line() {
        let csv = "phone\n+12125550101\nbad\n+12125550102\n+12125550103\n";
        let mut v = validate_contacts(csv.as_bytes(), &opts()).unwrap();
        v.exclude(|p| match p {
            "+12125550102" => Some(BadReason::DuplicateInList),
            "+12125550103" => Some(BadReason::OnDnc),
            _ => None,
        });
        assert_eq!(
            reasons(&v),
            vec![
                (3, "invalid number"),
                (4, "duplicate in list"),
                (5, "on the do-not-call list"),
            ]
        );
        assert_eq!(v.good.len(), 1);
    }

    #[test]
    fn quoted_multi_line_cells_keep_line_numbers() {
        let csv = "phone,note\n+12125550101,\"two\nlines\"\nbad,x\n";
        let v = validate_contacts(csv.as_bytes(), &opts()).unwrap();
        assert_eq!(reasons(&v), vec![(4, "invalid number")]);
        assert_eq!(v.good[0].custom["note"], "two\nlines");
    }

    #[test]
    fn mapping_renames_columns() {
        let csv = "Mobile,Full Name,Zone\n2125550101,Ada,America/Chicago\n";
        let mut o = opts();
        o.mapping = parse_mapping("Mobile:phone, Full Name:name,Zone:timezone").unwrap();
        let v = validate_contacts(csv.as_bytes(), &o).unwrap();
        assert_eq!(v.good[0].phone, "+12125550101");
        assert_eq!(v.good[0].name.as_deref(), Some("Ada"));
        assert_eq!(v.good[0].timezone.as_deref(), Some("America/Chicago"));
        o.mapping = parse_mapping("Cell:phone").unwrap();
        assert_eq!(
            validate_contacts(csv.as_bytes(), &o),
            Err(ImportError::UnknownMappedColumn("Cell".into()))
        );
        assert!(parse_mapping("nocolon").is_err());
    }

    #[test]
    fn whole_file_refusals() {
        assert_eq!(
            validate_contacts(&b""[..], &opts()),
            Err(ImportError::Empty)
        );
        assert!(matches!(
            validate_contacts(&b"name,number\nA,+12125550101\n"[..], &opts()),
            Err(ImportError::NoPhoneColumn { .. })
        ));
        assert_eq!(
            validate_contacts(&b"phone,name\n+12125550101,Ren\xe9\n"[..], &opts()),
            Err(ImportError::NotUtf8 { line: 2 })
        );
        assert_eq!(
            validate_contacts(&b"ph\xffone\n"[..], &opts()),
            Err(ImportError::NotUtf8 { line: 1 })
        );
        let mut o = opts();
        o.max_rows = 2;
        let csv = "phone\n+12125550101\n+12125550102\n";
        assert_eq!(validate_contacts(csv.as_bytes(), &o).unwrap().rows, 2);
        let csv = "phone\n+12125550101\n+12125550102\n+12125550103\n";
        assert_eq!(
            validate_contacts(csv.as_bytes(), &o),
            Err(ImportError::TooManyRows { limit: 2 })
        );
        assert!(matches!(
            validate_contacts(&b"phone\n\"+12125550101\n"[..], &opts()),
            Ok(_) | Err(ImportError::Malformed { .. })
        ));
    }

    #[test]
    fn bom_and_header_case() {
        let csv = "\u{feff}Phone,NAME\n+12125550101,Ada\n";
        let v = validate_contacts(csv.as_bytes(), &opts()).unwrap();
        assert_eq!(v.good[0].name.as_deref(), Some("Ada"));
    }

    #[test]
    fn dnc_files() {
        let csv = "phone,reason\n+12125550101,asked\nnope,\n(212) 555-0101,\n+12125550102,\n";
        let (good, bad, rows) =
            validate_dnc(csv.as_bytes(), Region::parse("US").unwrap(), 10).unwrap();
        assert_eq!(rows, 4);
        assert_eq!(good.len(), 2);
        assert_eq!(good[0].reason.as_deref(), Some("asked"));
        let r: Vec<_> = bad.iter().map(|b| (b.line, b.reason.as_str())).collect();
        assert_eq!(r, vec![(3, "invalid number"), (4, "duplicate in file")]);
    }

    #[test]
    fn a_large_file_with_one_percent_bad_rows_reports_each() {
        let mut csv = String::from("phone,name\n");
        let mut expected = Vec::new();
        for i in 0..5_000u64 {
            let line = i + 2;
            if i % 100 == 7 {
                csv.push_str("12,bad\n");
                expected.push(line);
            } else {
                csv.push_str(&format!("+1212555{:04},n{i}\n", i % 10_000));
            }
        }
        let v = validate_contacts(csv.as_bytes(), &opts()).unwrap();
        let lines: Vec<u64> = v.bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, expected);
        assert_eq!(v.good.len() + v.bad.len(), 5_000);
    }
}

//! The results: rows with their floors and targets, printed as a table and
//! written as JSON.

use serde_json::{Value, json};

/// How a figure is shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    /// Seconds, shown in ms.
    Ms,
    /// Seconds, shown in µs.
    Us,
    /// Bytes, shown in MiB.
    MiB,
    /// Bytes, shown in KiB.
    KiB,
    /// Calls per second.
    PerSec,
    /// A plain number (per call).
    Count,
    /// Instructions, shown in thousands.
    Instr,
    /// US dollars.
    Usd,
}

impl Unit {
    pub fn show(self, v: f64) -> String {
        match self {
            Unit::Ms => format!("{:.2} ms", v * 1e3),
            Unit::Us => format!("{:.1} µs", v * 1e6),
            Unit::MiB => format!("{:.2} MiB", v / (1024.0 * 1024.0)),
            Unit::KiB => format!("{:.2} KiB", v / 1024.0),
            Unit::PerSec => format!("{v:.0}/s"),
            Unit::Count => format!("{v:.1}"),
            Unit::Instr => format!("{:.1} k", v / 1000.0),
            Unit::Usd => format!("${v:.4}"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Ms | Unit::Us => "s",
            Unit::MiB | Unit::KiB => "bytes",
            Unit::PerSec => "per_s",
            Unit::Count => "count",
            Unit::Instr => "instructions",
            Unit::Usd => "usd",
        }
    }
}

/// What a figure should meet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    None,
    /// value / floor ≤ x
    RatioAtMost(f64),
    /// value / floor ≥ x (a rate: higher is better)
    RatioAtLeast(f64),
    /// value ≤ x (in the row's base unit: seconds, bytes)
    AtMost(f64),
    /// value − floor ≤ x (base unit)
    OverFloorAtMost(f64),
    /// value ≥ x (base unit: a rate per second)
    AtLeast(f64),
}

#[derive(Debug, Clone)]
pub struct Row {
    pub section: &'static str,
    pub metric: String,
    pub value: f64,
    pub unit: Unit,
    /// The floor measured in the same run, and what it is.
    pub floor: Option<(f64, String)>,
    pub target: Target,
    pub note: String,
}

impl Row {
    pub fn ratio(&self) -> Option<f64> {
        self.floor
            .as_ref()
            .filter(|(f, _)| *f > 0.0)
            .map(|(f, _)| self.value / f)
    }

    pub fn met(&self) -> Option<bool> {
        match self.target {
            Target::None => None,
            Target::RatioAtMost(x) => self.ratio().map(|r| r <= x),
            Target::RatioAtLeast(x) => self.ratio().map(|r| r >= x),
            Target::AtMost(x) => Some(self.value <= x),
            Target::OverFloorAtMost(x) => self.floor.as_ref().map(|(f, _)| self.value - f <= x),
            Target::AtLeast(x) => Some(self.value >= x),
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::None => String::new(),
            Target::RatioAtMost(x) => format!("≤ {x}× floor"),
            Target::RatioAtLeast(x) => format!("≥ {x}× floor"),
            Target::AtMost(x) => format!("≤ {}", self.unit.show(x)),
            Target::OverFloorAtMost(x) => format!("floor + {}", self.unit.show(x)),
            Target::AtLeast(x) => format!("≥ {}", self.unit.show(x)),
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "section": self.section,
            "metric": self.metric,
            "value": self.value,
            "unit": self.unit.name(),
            "shown": self.unit.show(self.value),
            "floor": self.floor.as_ref().map(|(f, _)| *f),
            "floor_is": self.floor.as_ref().map(|(_, what)| what.clone()),
            "ratio": self.ratio(),
            "over_floor": self.floor.as_ref().map(|(f, _)| self.value - f),
            "target": self.target_text(),
            "met": self.met(),
            "note": self.note,
        })
    }
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
    /// Sections that did not run, and why.
    pub skipped: Vec<String>,
    /// Extra figures for the JSON (distributions, breakdowns).
    pub details: serde_json::Map<String, Value>,
}

impl Report {
    /// Prints the table and what was skipped, then writes `<dir>/<stem>.json` (rows, details,
    /// `machine`) and `<dir>/<stem>.txt` (the table). `who` names the program in messages.
    pub fn finish(
        &self,
        who: &str,
        dir: &std::path::Path,
        stem: &str,
        machine: Value,
        started: std::time::Instant,
    ) {
        let table = self.table();
        println!("\n{table}");
        for skipped in &self.skipped {
            println!("skipped: {skipped}");
        }
        let json_path = dir.join(format!("{stem}.json"));
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| {
                std::fs::write(
                    &json_path,
                    serde_json::to_vec_pretty(&self.json(machine)).unwrap_or_default(),
                )
            })
            .and_then(|()| std::fs::write(dir.join(format!("{stem}.txt")), &table));
        match written {
            Ok(()) => println!(
                "\nwrote {} (in {:.0} s)",
                json_path
                    .canonicalize()
                    .unwrap_or_else(|_| json_path.clone())
                    .display(),
                started.elapsed().as_secs_f64()
            ),
            Err(e) => eprintln!("{who}: cannot write {}: {e}", dir.display()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn row(
        &mut self,
        section: &'static str,
        metric: impl Into<String>,
        value: f64,
        unit: Unit,
        floor: Option<(f64, &str)>,
        target: Target,
        note: impl Into<String>,
    ) {
        let row = Row {
            section,
            metric: metric.into(),
            value,
            unit,
            floor: floor.map(|(f, what)| (f, what.to_owned())),
            target,
            note: note.into(),
        };
        println!("  {}", one_line(&row));
        self.rows.push(row);
    }

    pub fn skip(&mut self, what: impl Into<String>) {
        let what = what.into();
        println!("  skipped: {what}");
        self.skipped.push(what);
    }

    pub fn detail(&mut self, key: &str, value: Value) {
        self.details.insert(key.to_owned(), value);
    }

    /// The table, as printed at the end of the run and pasted into BENCHMARKS.md.
    pub fn table(&self) -> String {
        let header = [
            "section",
            "metric",
            "zen",
            "floor",
            "ratio",
            "over floor",
            "target",
            "",
        ];
        let mut lines: Vec<[String; 8]> = vec![header.map(str::to_owned)];
        for row in &self.rows {
            let (floor, over) = match &row.floor {
                Some((f, what)) => (
                    format!("{} ({what})", row.unit.show(*f)),
                    over_floor(row.unit, row.value - f),
                ),
                None => (String::new(), String::new()),
            };
            lines.push([
                row.section.to_owned(),
                row.metric.clone(),
                row.unit.show(row.value),
                floor,
                row.ratio().map(|r| format!("{r:.2}×")).unwrap_or_default(),
                over,
                row.target_text(),
                match row.met() {
                    Some(true) => "ok".into(),
                    Some(false) => "MISSED".into(),
                    None => String::new(),
                },
            ]);
        }
        let mut widths = [0usize; 8];
        for line in &lines {
            for (w, cell) in widths.iter_mut().zip(line) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            out.push('|');
            for (w, cell) in widths.iter().zip(line) {
                let pad = w - cell.chars().count();
                out.push(' ');
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
                out.push_str(" |");
            }
            out.push('\n');
            if i == 0 {
                out.push('|');
                for w in widths {
                    out.push_str(&"-".repeat(w + 2));
                    out.push('|');
                }
                out.push('\n');
            }
        }
        out
    }

    pub fn json(&self, machine: Value) -> Value {
        json!({
            "machine": machine,
            "rows": self.rows.iter().map(Row::json).collect::<Vec<_>>(),
            "skipped": self.skipped,
            "details": self.details,
        })
    }
}

fn over_floor(unit: Unit, diff: f64) -> String {
    let sign = if diff < 0.0 { "−" } else { "+" };
    format!("{sign}{}", unit.show(diff.abs()))
}

fn one_line(row: &Row) -> String {
    let mut text = format!("{:<48} {:>12}", row.metric, row.unit.show(row.value));
    if let Some((f, what)) = &row.floor {
        text.push_str(&format!("  floor {} ({what})", row.unit.show(*f)));
    }
    if let Some(r) = row.ratio() {
        text.push_str(&format!("  {r:.2}×"));
    }
    match row.met() {
        Some(true) => text.push_str("  ok"),
        Some(false) => text.push_str(&format!("  MISSED ({})", row.target_text())),
        None => {}
    }
    text
}

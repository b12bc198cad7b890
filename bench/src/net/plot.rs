//! The latency-by-percentile plot, HdrHistogram style: percentiles on a
//! log scale of `1 / (1 - p)` (so 90%, 99%, 99.9%, ... are evenly spaced
//! and the tail gets the room), latency in milliseconds, one line per
//! result. Hand-written SVG, no dependencies.

use serde_json::Value;

/// One line: its label and (percentile, latency in ms) points.
#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 110.0;
/// Nines shown at most (99.9999%).
const NINES_MAX: f64 = 6.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `log10(1 / (1 - p))`, capped.
fn nines(p: f64) -> f64 {
    if p >= 100.0 {
        NINES_MAX
    } else {
        (1.0 / (1.0 - p / 100.0)).log10().clamp(0.0, NINES_MAX)
    }
}

fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

/// Renders the plot.
pub fn svg(title: &str, lines: &[Line]) -> String {
    // The x range: enough nines for the deepest finite percentile, and the
    // max (100%) drawn at the right edge.
    let deepest = lines
        .iter()
        .flat_map(|l| l.points.iter())
        .filter(|(p, _)| *p < 100.0)
        .map(|(p, _)| nines(*p))
        .fold(2.0f64, f64::max);
    let x_max = deepest.ceil().clamp(2.0, NINES_MAX);
    let y_max = nice_ceiling(
        lines
            .iter()
            .flat_map(|l| l.points.iter())
            .map(|(_, v)| *v)
            .fold(0.0f64, f64::max)
            * 1.05,
    );
    let pw = WIDTH - LEFT - RIGHT;
    let ph = HEIGHT - TOP - BOTTOM;
    let x = |p: f64| LEFT + nines(p).min(x_max) / x_max * pw;
    let y = |v: f64| TOP + ph - (v / y_max).clamp(0.0, 1.0) * ph;
    let mut s = String::new();
    s.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n"
    ));
    s.push_str(&format!(
        "<rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"white\"/>\n"
    ));
    s.push_str(&format!(
        "<text x=\"{}\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">{}</text>\n",
        WIDTH / 2.0,
        escape(title)
    ));
    // Grid and axes.
    for i in 0..=(x_max as usize) {
        let xi = LEFT + i as f64 / x_max * pw;
        let label = match i {
            0 => "0%".to_string(),
            1 => "90%".to_string(),
            n => format!("99.{}%", "9".repeat(n - 2)).replace("99.%", "99%"),
        };
        s.push_str(&format!(
            "<line x1=\"{xi:.1}\" y1=\"{TOP}\" x2=\"{xi:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\n<text x=\"{xi:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>\n",
            TOP + ph,
            TOP + ph + 18.0
        ));
    }
    for i in 0..=5 {
        let v = y_max * i as f64 / 5.0;
        let yi = y(v);
        s.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{yi:.1}\" x2=\"{:.1}\" y2=\"{yi:.1}\" stroke=\"#ddd\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            LEFT + pw,
            LEFT - 6.0,
            yi + 4.0,
            trim_number(v)
        ));
    }
    s.push_str(&format!(
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#333\"/>\n"
    ));
    s.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">percentile (log scale of 1/(1-p))</text>\n",
        LEFT + pw / 2.0,
        TOP + ph + 38.0
    ));
    s.push_str(&format!(
        "<text transform=\"translate(20 {:.1}) rotate(-90)\" text-anchor=\"middle\">latency (ms)</text>\n",
        TOP + ph / 2.0
    ));
    for (i, line) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = line
            .points
            .iter()
            .map(|(p, v)| format!("{:.1},{:.1}", x(*p), y(*v)))
            .collect();
        s.push_str(&format!(
            "<polyline class=\"series\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n",
            pts.join(" ")
        ));
        let ly = TOP + ph + 58.0 + 16.0 * i as f64;
        s.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-width=\"3\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            ly - 4.0,
            LEFT + 24.0,
            ly - 4.0,
            LEFT + 30.0,
            ly,
            escape(&line.label)
        ));
    }
    s.push_str("</svg>\n");
    s
}

fn trim_number(v: f64) -> String {
    let t = format!("{v:.3}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    if t.is_empty() {
        "0".into()
    } else {
        t.to_string()
    }
}

fn line_of(v: &Value, label: String) -> Result<Line, String> {
    let pts = v
        .get("percentiles")
        .and_then(Value::as_array)
        .ok_or("no \"percentiles\" array (is it a `lumadb bench --json` result?)")?;
    let mut points = Vec::new();
    for p in pts {
        let pair = p
            .as_array()
            .filter(|a| a.len() == 2)
            .ok_or("a percentile point is not [p, ms]")?;
        let (Some(pc), Some(ms)) = (pair[0].as_f64(), pair[1].as_f64()) else {
            return Err("a percentile point is not numeric".into());
        };
        points.push((pc, ms));
    }
    Ok(Line { label, points })
}

fn label_of(v: &Value) -> String {
    let target = v.get("target").and_then(Value::as_str).unwrap_or("?");
    let mode = v.get("mode").and_then(Value::as_str).unwrap_or("?");
    format!("{target} ({mode})")
}

/// The lines of one JSON result file: one for a run, two (A and B of the
/// last round) for a `--compare` result.
pub fn series_from_json(text: &str) -> Result<Vec<Line>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if let Some(rounds) = v.get("rounds").and_then(Value::as_array) {
        let last = rounds.last().ok_or("a comparison without rounds")?;
        let mut out = Vec::new();
        for side in ["a", "b"] {
            let r = last.get(side).ok_or("a round without both sides")?;
            out.push(line_of(r, label_of(r))?);
        }
        return Ok(out);
    }
    Ok(vec![line_of(&v, label_of(&v))?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_lines_with_a_log_tail_axis() {
        let a = Line {
            label: "a <1>".into(),
            points: vec![(0.0, 0.1), (50.0, 0.2), (99.0, 1.0), (99.9, 3.0), (100.0, 4.0)],
        };
        let out = svg("t", &[a.clone(), Line { label: "b".into(), ..a }]);
        assert!(out.starts_with("<svg"));
        assert!(out.trim_end().ends_with("</svg>"));
        assert_eq!(out.matches("class=\"series\"").count(), 2);
        assert!(out.contains("99.9%"));
        assert!(out.contains("a &lt;1&gt;"));
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
    }

    #[test]
    fn reads_results_back() {
        let doc = r#"{"target":"x:1","mode":"open","percentiles":[[50.0,0.5],[100.0,2.0]]}"#;
        let lines = series_from_json(doc).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].label, "x:1 (open)");
        assert_eq!(lines[0].points, vec![(50.0, 0.5), (100.0, 2.0)]);
        assert!(series_from_json("{}").is_err());
        assert!(series_from_json("nope").is_err());
    }
}

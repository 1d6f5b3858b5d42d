//! The benchmark report: a table of every run, the ratios Rill/nginx and
//! Rill/floor (the null server) per scenario, JSON, and an SVG chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::RunResult;

/// The four headline figures of a run.
#[derive(Serialize, Clone, Copy, Debug, Default)]
pub struct Figures {
    /// Server CPU seconds per player-minute.
    pub cpu: Option<f64>,
    /// Server PSS per player, KiB.
    pub mem: Option<f64>,
    /// End-to-end latency p99, ms.
    pub lat99: Option<f64>,
    /// Time to first frame p99, ms.
    pub ttff99: Option<f64>,
}

impl Figures {
    fn of(r: &RunResult) -> Figures {
        Figures {
            cpu: r.server_cost.as_ref().map(|c| c.cpu_s_per_player_min),
            mem: r.server_cost.as_ref().map(|c| c.mem_per_player_kib),
            lat99: r.latency_ms.p99,
            ttff99: r.ttff_ms.p99,
        }
    }

    fn ratio(a: &Figures, b: &Figures) -> Figures {
        let d = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) if y > 0.0 && x >= 0.0 => Some(x / y),
            _ => None,
        };
        Figures {
            cpu: d(a.cpu, b.cpu),
            mem: d(a.mem, b.mem),
            lat99: d(a.lat99, b.lat99),
            ttff99: d(a.ttff99, b.ttff99),
        }
    }
}

#[derive(Serialize)]
struct Ratio {
    stream: String,
    players: usize,
    what: String,
    figures: Figures,
    /// Latency p99 of Rill minus that of the reference, ms.
    latency_p99_added_ms: Option<f64>,
}

#[derive(Serialize)]
struct Summary<'a> {
    machine: &'a str,
    runs: &'a [RunResult],
    ratios: Vec<Ratio>,
}

/// Series in chart order: (server, proto, label, colour).
const SERIES: &[(&str, &str, &str, &str)] = &[
    ("null", "rtmp", "floor (null) RTMP", "#9e9e9e"),
    ("nginx", "rtmp", "nginx-rtmp", "#2e7d32"),
    ("rill", "rtmp", "Rill RTMP", "#1565c0"),
    ("null", "http-flv", "floor (null) HTTP-FLV", "#cfcfcf"),
    ("rill", "http-flv", "Rill HTTP-FLV", "#ef6c00"),
    ("rill", "fmp4", "Rill fMP4", "#6a1b9a"),
    ("null", "hls", "floor (null) LL-HLS", "#bdbdbd"),
    ("rill", "hls", "Rill LL-HLS", "#c62828"),
    ("null", "hls-ts", "floor (null) HLS (TS)", "#e0e0e0"),
    ("nginx", "hls-ts", "nginx HLS (TS)", "#66bb6a"),
    ("rill", "hls-ts", "Rill HLS (TS)", "#ad1457"),
    ("rill", "srt", "Rill SRT", "#00838f"),
    ("rill", "rtsp", "Rill RTSP", "#4e342e"),
    ("rill", "rtsp-udp", "Rill RTSP (UDP)", "#8d6e63"),
    ("rill", "whep", "Rill WHEP", "#f9a825"),
];

fn key(r: &RunResult) -> (u64, String, usize) {
    // Order streams by the number their name starts with (2500k), then by
    // player count.
    let lead: String = r.stream.chars().take_while(char::is_ascii_digit).collect();
    (lead.parse().unwrap_or(0), r.stream.clone(), r.players)
}

fn f(v: Option<f64>, prec: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.prec$}"))
}

fn x(v: Option<f64>) -> String {
    v.map_or("–".into(), |r| {
        if r >= 10.0 {
            format!("{r:.0}×")
        } else if r >= 0.1 {
            format!("{r:.2}×")
        } else {
            format!("{}×", sig(r))
        }
    })
}

pub fn report(files: &[PathBuf], out_dir: &Path, machine: &str) -> Result<(), String> {
    let mut runs = Vec::new();
    for p in files {
        let t = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let r: RunResult = serde_json::from_str(&t).map_err(|e| format!("{}: {e}", p.display()))?;
        runs.push(r);
    }
    if runs.is_empty() {
        return Err("no runs".into());
    }
    runs.sort_by_key(|r| {
        let s = SERIES
            .iter()
            .position(|s| s.0 == r.server && s.1 == r.proto)
            .unwrap_or(99);
        (key(r), s)
    });
    let mut scen: BTreeMap<(u64, String, usize), Vec<&RunResult>> = BTreeMap::new();
    for r in &runs {
        scen.entry(key(r)).or_default().push(r);
    }

    let mut md = String::new();
    if !machine.is_empty() {
        let _ = writeln!(md, "Machine: {machine}\n");
    }
    let _ = writeln!(
        md,
        "| stream | players | server | kept up | CPU s / player-min | PSS KiB / player | server CPU % | latency p50 / p99 ms | TTFF p50 / p99 ms | Mbit/s / player | client CPU % |"
    );
    let _ = writeln!(md, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &runs {
        let c = r.server_cost.clone().unwrap_or_default();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {}/{} | {:.4} | {:.1} | {:.0} | {} / {} | {} / {} | {:.2} | {:.0} |",
            r.stream,
            r.players,
            r.label,
            r.kept_up,
            r.players,
            c.cpu_s_per_player_min,
            c.mem_per_player_kib,
            c.cpu_util * 100.0,
            f(r.latency_ms.p50, 1),
            f(r.latency_ms.p99, 1),
            f(r.ttff_ms.p50, 1),
            f(r.ttff_ms.p99, 1),
            r.mbit_per_player,
            r.client_cpu_s / r.duration_s.max(1e-9) * 100.0
        );
    }

    // HLS runs: what only they have.
    let hls: Vec<&RunResult> = runs.iter().filter(|r| r.hls.is_some()).collect();
    if !hls.is_empty() {
        let _ = writeln!(
            md,
            "\n| stream | players | server | part target ms | part availability p50 / p99 ms | last frame of a part p50 / p99 ms | goal (p99 ≤ part target + 50 ms) | requests / player-s |"
        );
        let _ = writeln!(md, "|---|---:|---|---:|---:|---:|---|---:|");
        for r in hls {
            let Some(h) = &r.hls else { continue };
            let c = &h.counters;
            let requests =
                c.multivariant + c.playlists + c.blocking_reloads + c.inits + c.parts + c.segments;
            let player_s = (r.players as f64 * (r.duration_s + r.ramp_s)).max(1e-9);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} / {} | {} / {} | {} | {:.1} |",
                r.stream,
                r.players,
                r.label,
                f(c.part_target_ms, 0),
                f(h.part_latency_ms.p50, 1),
                f(h.part_latency_ms.p99, 1),
                f(h.part_tail_latency_ms.p50, 1),
                f(h.part_tail_latency_ms.p99, 1),
                match h.part_goal_met {
                    Some(true) => "met",
                    Some(false) => "missed",
                    None => "–",
                },
                requests as f64 / player_s
            );
        }
    }

    let mut ratios = Vec::new();
    let find = |v: &[&RunResult], s: &str, p: &str| -> Option<RunResult> {
        v.iter()
            .find(|r| r.server == s && r.proto == p)
            .map(|r| (*r).clone())
    };
    for ((_, stream, n), v) in &scen {
        let pairs = [
            (
                "Rill RTMP / nginx-rtmp",
                ("rill", "rtmp"),
                ("nginx", "rtmp"),
            ),
            ("Rill RTMP / floor RTMP", ("rill", "rtmp"), ("null", "rtmp")),
            (
                "Rill HTTP-FLV / floor HTTP-FLV",
                ("rill", "http-flv"),
                ("null", "http-flv"),
            ),
            (
                "Rill HTTP-FLV / nginx-rtmp",
                ("rill", "http-flv"),
                ("nginx", "rtmp"),
            ),
            (
                "nginx-rtmp / floor RTMP",
                ("nginx", "rtmp"),
                ("null", "rtmp"),
            ),
            ("Rill WHEP / Rill RTMP", ("rill", "whep"), ("rill", "rtmp")),
            (
                "Rill LL-HLS / floor LL-HLS",
                ("rill", "hls"),
                ("null", "hls"),
            ),
            (
                "Rill HLS (TS) / floor HLS (TS)",
                ("rill", "hls-ts"),
                ("null", "hls-ts"),
            ),
            (
                "Rill HLS (TS) / nginx HLS (TS)",
                ("rill", "hls-ts"),
                ("nginx", "hls-ts"),
            ),
            (
                "nginx HLS (TS) / floor HLS (TS)",
                ("nginx", "hls-ts"),
                ("null", "hls-ts"),
            ),
        ];
        for (what, a, b) in pairs {
            let (Some(ra), Some(rb)) = (find(v, a.0, a.1), find(v, b.0, b.1)) else {
                continue;
            };
            let (fa, fb) = (Figures::of(&ra), Figures::of(&rb));
            ratios.push(Ratio {
                stream: stream.clone(),
                players: *n,
                what: what.into(),
                figures: Figures::ratio(&fa, &fb),
                latency_p99_added_ms: fa.lat99.zip(fb.lat99).map(|(a, b)| a - b),
            });
        }
    }
    let _ = writeln!(
        md,
        "\n| stream | players | ratio | CPU / player | memory / player | latency p99 | TTFF p99 | latency p99 difference |"
    );
    let _ = writeln!(md, "|---|---:|---|---:|---:|---:|---:|---:|");
    for r in &ratios {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} ms |",
            r.stream,
            r.players,
            r.what,
            x(r.figures.cpu),
            x(r.figures.mem),
            x(r.figures.lat99),
            x(r.figures.ttff99),
            f(r.latency_p99_added_ms, 1)
        );
    }
    print!("{md}");

    std::fs::create_dir_all(out_dir).map_err(|e| e.to_string())?;
    let summary = Summary {
        machine,
        runs: &runs,
        ratios,
    };
    let write = |name: &str, text: &str| {
        let p = out_dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
    };
    write(
        "summary.json",
        &serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?,
    )?;
    write("table.md", &md)?;
    write("chart.svg", &chart(&scen))?;
    eprintln!(
        "report: {} (summary.json, table.md, chart.svg)",
        out_dir.display()
    );
    Ok(())
}

type Scenarios<'a> = BTreeMap<(u64, String, usize), Vec<&'a RunResult>>;

/// A chart panel: title, log scale, and the figure it plots.
type Panel = (&'static str, bool, fn(&Figures) -> Option<f64>);

/// Four panels of grouped bars (costs on linear scales from 0, times on log
/// scales): one group per scenario, one bar per server.
fn chart(scen: &Scenarios) -> String {
    let panels: [Panel; 4] = [
        ("server CPU s per player-minute", false, |f| f.cpu),
        ("server memory (PSS) KiB per player", false, |f| f.mem),
        ("latency p99, ms (publish → play), log scale", true, |f| {
            f.lat99
        }),
        ("time to first frame p99, ms, log scale", true, |f| f.ttff99),
    ];
    let (pw, ph) = (560.0, 330.0);
    let (w, h) = (2.0 * pw + 30.0, 2.0 * ph + 90.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    // Legend.
    let present: Vec<_> = SERIES
        .iter()
        .filter(|se| {
            scen.values()
                .flatten()
                .any(|r| r.server == se.0 && r.proto == se.1)
        })
        .collect();
    let mut lx = 20.0;
    for se in &present {
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="12" width="12" height="12" fill="{}"/><text x="{}" y="22">{}</text>"#,
            se.3,
            lx + 16.0,
            se.2
        );
        lx += 30.0 + 7.0 * se.2.len() as f64;
    }
    for (i, (title, log, get)) in panels.iter().enumerate() {
        let ox = 15.0 + (i % 2) as f64 * (pw + 10.0);
        let oy = 40.0 + (i / 2) as f64 * (ph + 20.0);
        let sc = Scale::new(scen, *get, *log);
        panel(&mut s, ox, oy, pw, ph, title, *get, &sc, scen, &present);
    }
    s.push_str("</svg>\n");
    s
}

#[allow(clippy::too_many_arguments)]
fn panel(
    s: &mut String,
    ox: f64,
    oy: f64,
    pw: f64,
    ph: f64,
    title: &str,
    get: fn(&Figures) -> Option<f64>,
    sc: &Scale,
    scen: &Scenarios,
    series: &[&(&str, &str, &str, &str)],
) {
    let (left, top, bottom) = (55.0, 48.0, 40.0);
    let (cw, ch) = (pw - left - 10.0, ph - top - bottom);
    let _ = writeln!(
        s,
        r##"<rect x="{ox}" y="{oy}" width="{pw}" height="{ph}" fill="none" stroke="#ddd"/><text x="{}" y="{}" font-size="13" font-weight="bold">{title}</text>"##,
        ox + 8.0,
        oy + 18.0
    );
    if sc.empty {
        return;
    }
    let y_of = |v: f64| oy + top + ch - sc.frac(v) * ch;
    let x0 = ox + left;
    for t in sc.ticks() {
        let y = y_of(t);
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 + cw,
            x0 - 4.0,
            y + 4.0,
            tick(t)
        );
    }
    let groups = scen.len().max(1) as f64;
    let gw = cw / groups;
    let bw = (gw * 0.8 / series.len().max(1) as f64).min(40.0);
    for (gi, ((_, stream, n), runs)) in scen.iter().enumerate() {
        let gx = x0 + gi as f64 * gw + (gw - bw * series.len() as f64) / 2.0;
        for (si, se) in series.iter().enumerate() {
            let Some(r) = runs.iter().find(|r| r.server == se.0 && r.proto == se.1) else {
                continue;
            };
            let Some(v) = get(&Figures::of(r)) else {
                continue;
            };
            let bx = gx + si as f64 * bw;
            let base = oy + top + ch;
            let y = y_of(v).clamp(oy + top, base);
            let _ = writeln!(
                s,
                r#"<rect x="{bx:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                bw - 2.0,
                base - y,
                se.3,
                se.2,
                sig(v),
            );
            // Labels upright when they fit over the bar, else vertical.
            let (lx, ly) = (bx + bw / 2.0 - 1.0, y - 3.0);
            let label = sig(v);
            if label.len() as f64 * 5.5 <= bw {
                let _ = writeln!(
                    s,
                    r#"<text x="{lx:.1}" y="{ly:.1}" font-size="9" text-anchor="middle">{label}</text>"#
                );
            } else {
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{ly:.1}" font-size="9" transform="rotate(-90 {:.1} {ly:.1})">{label}</text>"#,
                    lx + 3.0,
                    lx + 3.0
                );
            }
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{stream} × {n}</text>"#,
            x0 + gi as f64 * gw + gw / 2.0,
            oy + top + ch + 16.0
        );
    }
}

/// A value axis: log (decades) or linear from 0.
struct Scale {
    log: bool,
    lo: f64,
    hi: f64,
    /// Tick step of a linear axis.
    step: f64,
    empty: bool,
}

impl Scale {
    fn new(scen: &Scenarios, get: fn(&Figures) -> Option<f64>, log: bool) -> Scale {
        let vals: Vec<f64> = scen
            .values()
            .flatten()
            .filter_map(|r| get(&Figures::of(r)))
            .filter(|v| *v > 0.0)
            .collect();
        let max = vals.iter().cloned().fold(0.0, f64::max);
        if log {
            let lo = vals
                .iter()
                .cloned()
                .fold(f64::MAX, f64::min)
                .log10()
                .floor();
            let hi = max.log10().ceil().max(lo + 1.0);
            Scale {
                log,
                lo,
                hi,
                step: 1.0,
                empty: vals.is_empty(),
            }
        } else {
            // 1, 2 or 5 × 10^k steps, five or fewer.
            let raw = max / 5.0;
            let mag = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .iter()
                .map(|m| m * mag)
                .find(|s| *s >= raw)
                .unwrap_or(10.0 * mag);
            let hi = (max / step).ceil() * step;
            Scale {
                log,
                lo: 0.0,
                hi,
                step,
                empty: vals.is_empty(),
            }
        }
    }

    /// 0..=1 of the axis height.
    fn frac(&self, v: f64) -> f64 {
        if self.log {
            if v <= 0.0 {
                return 0.0;
            }
            (v.log10() - self.lo) / (self.hi - self.lo)
        } else {
            v / self.hi
        }
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            (self.lo as i32..=self.hi as i32)
                .map(|d| 10f64.powi(d))
                .collect()
        } else {
            let n = (self.hi / self.step).round() as i32;
            (0..=n).map(|i| i as f64 * self.step).collect()
        }
    }
}

fn tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v >= 1.0 {
        format!("{v:.0}")
    } else {
        let d = (-v.log10().floor()) as usize + 1;
        format!("{v:.d$}")
    }
}

/// Two significant digits.
fn sig(v: f64) -> String {
    if v <= 0.0 {
        return "0".into();
    }
    let d = (2 - 1 - v.log10().floor() as i32).max(0) as usize;
    format!("{v:.d$}")
}

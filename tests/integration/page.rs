//! The situation page (`GET /situation`) and `cpid situation`: the two
//! human views of `/v1/situation`. The page is served with its assets and a
//! strict Content-Security-Policy, and — driven by a real headless
//! Chromium — loads without a console message and shows the figures the
//! API returns; the command prints the same figures in a terminal.
//!
//! The browser test needs the Debian package `chromium`; without it the
//! test skips loudly on a developer machine and fails under `CI=true`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cpid::api::client::ApiClient;
use cpid::ident::identifier::Identifier;
use cpid::ident::keys::NodeKey;
use serde_json::{Value, json};

use crate::capacity::{provider, resource};
use crate::common::*;

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// An A800 pool of `cards` cards in `region`.
fn pool_in(region: &str, cards: u64) -> String {
    a800_pool(cards).replace(r#""region":"31""#, &format!(r#""region":"{region}""#))
}

fn report(api: &ApiClient, key: &NodeKey, seq: u64, items: &[(&Identifier, i64, i64)]) {
    let resources: Vec<Value> = items
        .iter()
        .map(|(id, available, in_use)| {
            json!({"id": id.to_string(), "units_available": available,
                   "units_in_use": in_use, "health": "ok"})
        })
        .collect();
    let body = json!({"agent": "rack", "seq": seq, "interval_secs": 60, "resources": resources});
    let r = api.signed("POST", "/v1/reports", Some(&body), key).unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A node with resources in Shanghai (31) and Beijing (11) reporting, and
/// one resource in Guangdong (44) that never reported (an `unknown`
/// finding in `/v1/quality`); Beijing's agent also sent an old report
/// again (refused, an event in `/v1/quality`).
fn populated_node() -> TestNode {
    let node = TestNode::open_policy();
    let api = node.api();
    let (sh, _) = provider(&api, "shanghai-dc", "31");
    let a = resource(&api, &sh, &pool_in("31", 8));
    let b = resource(&api, &sh, &pool_in("31", 16));
    report(&api, &sh, 1, &[(&a, 6, 2), (&b, 3, 13)]);
    let (bj, _) = provider(&api, "beijing-dc", "11");
    let c = resource(&api, &bj, &pool_in("11", 4));
    report(&api, &bj, 1, &[(&c, 4, 0)]);
    report(&api, &bj, 2, &[(&c, 4, 0)]);
    // A report whose sequence goes backwards: refused, and kept as an
    // event against Beijing.
    let body = json!({"agent": "rack", "seq": 1, "interval_secs": 60,
                      "resources": [{"id": c.to_string(), "units_available": 0,
                                     "units_in_use": 4, "health": "ok"}]});
    let r = api.signed("POST", "/v1/reports", Some(&body), &bj).unwrap();
    assert_eq!(r.status, 409, "{}", r.text);
    let (gd, _) = provider(&api, "guangdong-dc", "44");
    resource(&api, &gd, &pool_in("44", 2));
    node
}

fn get_json(api: &ApiClient, path: &str) -> Value {
    let r = api.get(path).unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    r.body
}

/// A plain HTTP/1.1 GET: status, headers (names lower-cased) and body.
fn http_get(
    addr: SocketAddr,
    path: &str,
    extra: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, raw[split + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------
// The dumped DOM
// ---------------------------------------------------------------------------

/// The start tag of the element with `id` in `dom`.
fn start_tag<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let at = dom.find(&format!(" id=\"{id}\""))?;
    let open = dom[..at].rfind('<')?;
    let close = at + dom[at..].find('>')?;
    Some(&dom[open..=close])
}

/// An attribute of the element with `id`.
fn attr(dom: &str, id: &str, name: &str) -> Option<String> {
    let tag = start_tag(dom, id)?;
    let key = format!(" {name}=\"");
    let from = tag.find(&key)? + key.len();
    let len = tag[from..].find('"')?;
    Some(tag[from..from + len].replace("&amp;", "&"))
}

/// The text directly inside the element with `id` (up to its first child tag).
fn text(dom: &str, id: &str) -> Option<String> {
    let tag = start_tag(dom, id)?;
    let from = dom.find(tag)? + tag.len();
    let len = dom[from..].find('<')?;
    Some(dom[from..from + len].trim().to_string())
}

/// `data-value` of `id` as a number; panics naming the element when absent.
fn value(dom: &str, id: &str) -> f64 {
    let v =
        attr(dom, id, "data-value").unwrap_or_else(|| panic!("no element #{id} with data-value"));
    v.parse()
        .unwrap_or_else(|_| panic!("#{id} data-value {v:?} is not a number"))
}

fn int(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn total(f: &Value) -> f64 {
    int(&f["fresh"]) + int(&f["stale"]) + int(&f["unknown"])
}

/// What Chromium shows of `url` after the page's first refresh, and the
/// console lines it logged.
struct Rendered {
    dom: String,
    console: Vec<String>,
    stderr: String,
}

fn chromium(url: &str) -> Rendered {
    let profile = tempfile::tempdir().unwrap();
    let child = Command::new("chromium")
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            // Virtual time: the first refresh's fetches complete, the next
            // refresh (5 s) never starts.
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out: Output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "chromium failed: {stderr}");
    Rendered {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        // Chromium logs every console message (log, warning, error,
        // uncaught exception, CSP violation) as `INFO:CONSOLE`; the page
        // writes none when it works.
        console: stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(str::to_string)
            .collect(),
        stderr,
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn the_page_and_its_assets_are_served_from_the_binary_with_a_strict_policy() {
    let node = TestNode::start();
    let addr = node.http_addr();
    let (status, headers, body) = http_get(addr, "/situation", &[]);
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = header(&headers, "content-security-policy").unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("/situation/assets/situation.js"));
    assert!(!html.contains("<script>"), "no inline script");

    for (file, kind) in [
        ("situation.js", "text/javascript"),
        ("situation.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
        ("uPlot.iife.min.js", "text/javascript"),
        ("uPlot.min.css", "text/css"),
    ] {
        let path = format!("/situation/assets/{file}");
        let (status, headers, body) = http_get(addr, &path, &[]);
        assert_eq!(status, 200, "{path}");
        assert!(
            header(&headers, "content-type").unwrap().starts_with(kind),
            "{path}: {headers:?}"
        );
        assert!(!body.is_empty(), "{path}");
        // Revalidation: the same ETag is 304 without a body.
        let tag = header(&headers, "etag").unwrap().to_string();
        let (status, _, body) = http_get(addr, &path, &[("If-None-Match", &tag)]);
        assert_eq!(status, 304, "{path}");
        assert!(body.is_empty());
    }
    let (status, _, _) = http_get(addr, "/situation/assets/../Cargo.toml", &[]);
    assert_eq!(status, 404);
    let (status, _, body) = http_get(addr, "/situation/assets/nothing.js", &[]);
    assert_eq!(status, 404);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "not_found");
}

#[test]
fn the_page_in_chromium_shows_the_figures_the_api_returns_without_console_messages() {
    if !require_tool("chromium", "chromium") {
        return;
    }
    let node = populated_node();
    let api = node.api();
    let url = format!("http://{}/situation", node.http_addr());

    // The page's first refresh runs within Chromium's virtual-time budget;
    // on a loaded machine a run may end before it, so look again until a
    // generous deadline.
    let deadline = Instant::now() + Duration::from_secs(180);
    let page = loop {
        let page = chromium(&url);
        assert!(
            page.console.is_empty(),
            "the page wrote to the console:\n{}",
            page.console.join("\n")
        );
        let loaded = ["quality-state", "trends-state"]
            .iter()
            .all(|id| attr(&page.dom, id, "data-state").is_some_and(|s| s != "loading"));
        if text(&page.dom, "status").as_deref() == Some("Live") && loaded {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed live figures:\n{}\n{}",
            page.dom,
            page.stderr
        );
    };
    let dom = &page.dom;
    // Read after the page: nothing reports in between, so these are the
    // figures the page read.
    let s = get_json(&api, "/v1/situation?group_by=region");
    let q = get_json(&api, "/v1/quality");

    // Headline.
    assert_eq!(value(dom, "resources-fresh"), int(&s["resources"]["fresh"]));
    assert_eq!(value(dom, "resources-fresh"), 3.0);
    assert_eq!(
        value(dom, "resources-unknown"),
        int(&s["resources"]["unknown"])
    );
    let units = s["units"].as_array().unwrap();
    let available: f64 = units
        .iter()
        .map(|u| int(&u["units_available"]["fresh"]))
        .sum();
    assert_eq!(value(dom, "units-available"), available);
    assert_eq!(available, 6.0 + 3.0 + 4.0);
    assert_eq!(
        attr(dom, "coverage", "data-fresh").unwrap(),
        s["coverage"]["regions_fresh"].to_string()
    );
    assert_eq!(text(dom, "coverage").unwrap(), "2 / 31 provinces");

    // Units by region.
    for u in units {
        let region = u["region"].as_str().unwrap();
        let id = format!("units-{region}");
        assert_eq!(
            value(dom, &format!("{id}-total")),
            total(&u["units_total"]),
            "{region}"
        );
        assert_eq!(
            value(dom, &format!("{id}-available")),
            int(&u["units_available"]["fresh"]),
            "{region}"
        );
        assert_eq!(
            value(dom, &format!("{id}-in-use")),
            int(&u["units_in_use"]["fresh"]),
            "{region}"
        );
    }

    // Peak per precision: the page's sum over regions of one precision.
    for precision in ["fp16", "int8"] {
        let (all, avail) = s["peaks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["precision"] == precision)
            .fold((0.0, 0.0), |(t, a), p| {
                (
                    t + total(&p["total_tflops"]),
                    a + int(&p["available_tflops"]["fresh"]),
                )
            });
        let id = format!("precision-{precision}");
        assert!(
            (value(dom, &format!("{id}-total")) - all).abs() < 1e-6,
            "{precision}"
        );
        assert!(
            (value(dom, &format!("{id}-available")) - avail).abs() < 1e-6,
            "{precision}"
        );
    }
    assert_eq!(value(dom, "precision-fp16-available"), 13.0 * 312.0);

    // The province heat table: all 31, with names, state and figures.
    let provinces = s["coverage"]["provinces"].as_array().unwrap();
    assert_eq!(provinces.len(), 31);
    for p in provinces {
        let code = p["code"].as_str().unwrap();
        let id = format!("province-{code}");
        assert_eq!(
            attr(dom, &id, "data-state").unwrap(),
            p["state"].as_str().unwrap(),
            "{code}"
        );
        assert!(
            dom.contains(&format!("<td>{}</td>", p["name"].as_str().unwrap())),
            "{code}'s name"
        );
        assert_eq!(
            value(dom, &format!("{id}-units-total")),
            total(&p["units_total"]),
            "{code}"
        );
        assert_eq!(
            value(dom, &format!("{id}-units-available")),
            int(&p["units_available"]["fresh"]),
            "{code}"
        );
    }
    assert_eq!(attr(dom, "province-31", "data-state").unwrap(), "fresh");
    assert_eq!(attr(dom, "province-44", "data-state").unwrap(), "silent");
    assert_eq!(attr(dom, "province-65", "data-state").unwrap(), "none");
    assert_eq!(text(dom, "province-11-availability").unwrap(), "100 %");

    // Data quality: every finding, and the counts per reason.
    let findings: usize = q["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["findings"].as_array().unwrap().len())
        .sum();
    assert!(findings >= 1, "the silent resource is a finding: {q}");
    assert_eq!(
        attr(dom, "quality-findings", "data-count").unwrap(),
        findings.to_string()
    );
    let events: usize = q["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["events"].as_array().unwrap().len())
        .sum();
    assert!(events >= 1, "the replayed report is an event: {q}");
    assert_eq!(
        attr(dom, "quality-events", "data-count").unwrap(),
        events.to_string()
    );
    for (reason, n) in q["counts"].as_object().unwrap() {
        assert_eq!(
            value(dom, &format!("quality-count-{reason}")),
            int(n),
            "{reason}"
        );
    }

    // The charts drew (uPlot makes a canvas in each chart's box).
    assert!(dom.matches("<canvas").count() >= 1, "no chart drawn");
}

#[test]
fn cpid_situation_prints_the_figures_as_tables_and_as_json() {
    let node = populated_node();
    let server = format!("http://{}", node.http_addr());
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_cpid"))
            .arg("situation")
            .args(["--server", &server])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };

    let table = run(&[]);
    assert!(
        table.contains("resources   3 fresh, 0 stale, 1 unknown"),
        "{table}"
    );
    assert!(table.contains("coverage    2 / 31 provinces"), "{table}");
    assert!(
        table.contains("units       30 total, 28 reporting: 13 available, 15 in use"),
        "{table}"
    );
    let shanghai = table
        .lines()
        .find(|l| l.trim_start().starts_with("31") && l.contains("Shanghai") && l.contains("IC"))
        .unwrap_or_else(|| panic!("no Shanghai row:\n{table}"));
    let cells: Vec<&str> = shanghai.split_whitespace().collect();
    assert_eq!(
        cells,
        ["31", "Shanghai", "IC", "2/0/0", "24", "24", "9", "15"],
        "{table}"
    );
    let fp16 = table
        .lines()
        .find(|l| l.trim_start().starts_with("fp16 "))
        .unwrap_or_else(|| panic!("no fp16 row:\n{table}"));
    let cells: Vec<&str> = fp16.split_whitespace().collect();
    assert_eq!(cells, ["fp16", "30", "9360.0", "4056.0"], "{table}");
    assert!(table.contains("44    Guangdong"), "{table}");

    // --json is the node's answer as it is; --region filters.
    let json: Value = serde_json::from_str(&run(&["--json", "--region", "11"])).unwrap();
    assert_eq!(json["filter"]["region"], "11");
    let regions: Vec<&str> = json["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["region"].as_str().unwrap())
        .collect();
    assert_eq!(regions, ["11"]);
    assert_eq!(json["resources"]["fresh"], 1);

    let grouped = run(&["--group-by", "class"]);
    assert!(grouped.contains("*  "), "regions summed read *:\n{grouped}");

    // A bad filter is the node's 400, as an error on stderr.
    let out = Command::new(env!("CARGO_BIN_EXE_cpid"))
        .args(["situation", "--server", &server, "--group-by", "planet"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid_query"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// SPDX-License-Identifier: Apache-2.0
//! Seeded, bounded fuzzing of the two ways prompts reach the element (issue
//! #9): the text grammar of `prompts` through `parse_prompts`, and both
//! properties on a real `tinysam` element, whose bus must get a WARNING and
//! whose prompts must stay as they were for every rejected value.
//!
//! Every case is generated from the seed and its index, so a failure names
//! what to rerun. `TINYSAM_FUZZ_SEED` changes the seed,
//! `TINYSAM_FUZZ_CASES` the number of text cases (default 100 000) and
//! `TINYSAM_FUZZ_SETS` the number of property sets (default 4 000).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, Once};
use std::time::Instant;

use gst::glib;
use gst::prelude::*;
use gsttinysam::segment::limits::{MAX_COORDINATE, MAX_POINTS_PER_PROMPT, MAX_PROMPTS};
use gsttinysam::segment::{Prompt, PromptError, parse_prompts};

const DEFAULT_SEED: u64 = 0x7153_0009;
const DEFAULT_CASES: usize = 100_000;
const DEFAULT_SETS: usize = 4_000;
/// What an error message may take, however large the input.
const MAX_ERROR_CHARS: usize = 400;
/// The tokens that separate tokens inside an object.
const SPACES: &[&str] = &[
    " ", " ", " ", "  ", "\t", "\n", " \r\n ", "\u{a0}", "\u{3000}",
];

/// Mixed into the seed so the property cases differ from the text ones.
const ELEMENT_STREAM: u64 = 0x0E1E_3E47;

fn space(rng: &mut Rng) -> &'static str {
    SPACES[rng.below(SPACES.len())]
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    env_or("TINYSAM_FUZZ_SEED", DEFAULT_SEED)
}

/// SplitMix64: tiny, seedable, and every case gets its own stream.
struct Rng(u64);

impl Rng {
    fn for_case(seed: u64, index: u64) -> Rng {
        let mut rng = Rng(seed ^ index.wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Uniform in `lo..hi`.
    fn float(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// The start of `text` and its length, for failure messages.
fn excerpt(text: &str) -> String {
    let head: String = text.chars().take(160).collect();
    if head.len() == text.len() {
        format!("{text:?}")
    } else {
        format!("{head:?}… ({} bytes)", text.len())
    }
}

/// Failed checks by name: how often, and the first case of each.
#[derive(Default)]
struct Failures(BTreeMap<String, (usize, String)>);

impl Failures {
    fn add(&mut self, check: impl Into<String>, detail: impl FnOnce() -> String) {
        let entry = self.0.entry(check.into()).or_insert_with(|| (0, detail()));
        entry.0 += 1;
    }

    fn assert_none(&self, what: &str) {
        if self.0.is_empty() {
            return;
        }
        let mut report = format!(
            "{what}: {} checks failed (seed {:#x})\n",
            self.0.len(),
            seed()
        );
        for (check, (count, first)) in &self.0 {
            let _ = writeln!(report, "- {check}: {count} times; first: {first}");
        }
        panic!("{report}");
    }
}

// ---------------------------------------------------------------------------
// Text prompts
// ---------------------------------------------------------------------------

/// A number as text whose value is finite and within the limit.
fn valid_number(rng: &mut Rng) -> String {
    let limit = f64::from(MAX_COORDINATE);
    let text = match rng.below(12) {
        0 | 1 => rng.int(0, 1000).to_string(),
        2 => rng.int(-(limit as i64), limit as i64).to_string(),
        3 => format!("{}", rng.float(-2000.0, 2000.0) as f32),
        4 => format!("{}", rng.float(-limit, limit) as f32),
        5 => format!("{:e}", rng.float(-limit, limit) as f32),
        6 => format!("{:E}", rng.float(0.0, 1.0) as f32),
        7 => format!("+{}", rng.int(0, 999)),
        8 => format!("{:04}", rng.int(0, 999)),
        9 => format!(".{}", rng.int(0, 99_999)),
        10 => format!("{}.", rng.int(0, 9999)),
        _ => rng
            .pick(&[
                "0",
                "-0",
                "0.0",
                "1e6",
                "-1e6",
                "1000000",
                "-1000000.0",
                "999999.9",
                "1e-45",
                "1e-30",
                "-1E-7",
                "0.5",
                "1e+3",
                "1000000.01",
            ])
            .to_string(),
    };
    let value: f32 = text.parse().expect("the generator makes numbers");
    assert!(
        value.is_finite() && value.abs() <= MAX_COORDINATE,
        "generator: {text}"
    );
    text
}

/// A number as text that parses but is non-finite or beyond the limit.
fn out_of_range_number(rng: &mut Rng) -> String {
    rng.pick(&[
        "nan",
        "NaN",
        "-nan",
        "inf",
        "-inf",
        "+Infinity",
        "infinity",
        "1e39",
        "-1e39",
        "3.4e38",
        "1e300",
        "1000001",
        "-1000001",
        "1000000.1",
        "1.5e6",
        "-2e7",
        "99999999999999999999999999",
    ])
    .to_string()
}

/// Text that is not a number.
fn not_a_number(rng: &mut Rng) -> String {
    rng.pick(&[
        "x", "1.2.3", "0x10", "1_000", "--1", "+-1", "1e", "e5", ".", "-", "١٢", "１", "⁵",
        "1e5e5", "nan(1)", "0b1", "1f", "½", "∞", "1\u{0}",
    ])
    .to_string()
        + if rng.chance(10) { "é" } else { "" }
}

fn key(rng: &mut Rng, name: &str) -> String {
    match rng.below(8) {
        0 => name.to_ascii_uppercase(),
        1 => {
            let mut k: Vec<char> = name.chars().collect();
            k[0] = k[0].to_ascii_uppercase();
            k.into_iter().collect()
        }
        _ => name.to_owned(),
    }
}

fn numbers(rng: &mut Rng, count: usize) -> String {
    (0..count)
        .map(|_| valid_number(rng))
        .collect::<Vec<_>>()
        .join(",")
}

/// A valid object: its tokens, in a random order.
fn valid_object_tokens(rng: &mut Rng, max_points: usize) -> Vec<String> {
    let with_box = rng.chance(60);
    let points = match rng.below(20) {
        0 => max_points,
        1 => rng.below(max_points + 1),
        2 => max_points.saturating_sub(rng.below(4)),
        _ => rng.below(4),
    };
    let mut tokens = Vec::new();
    if with_box {
        tokens.push(format!("{}={}", key(rng, "box"), numbers(rng, 4)));
    }
    for i in 0..points {
        // Without a box, the first point is positive.
        let name = if (i == 0 && !with_box) || rng.chance(60) {
            "point"
        } else {
            "neg"
        };
        tokens.push(format!("{}={}", key(rng, name), numbers(rng, 2)));
    }
    if tokens.is_empty() {
        tokens.push(format!("{}={}", key(rng, "point"), numbers(rng, 2)));
    }
    // Shuffle: the order of tokens does not matter to validity.
    for i in (1..tokens.len()).rev() {
        let j = rng.below(i + 1);
        tokens.swap(i, j);
    }
    tokens
}

fn join_tokens(rng: &mut Rng, tokens: &[String]) -> String {
    let mut text = String::new();
    if rng.chance(20) {
        text.push_str(space(rng));
    }
    for (i, t) in tokens.iter().enumerate() {
        if i > 0 {
            text.push_str(space(rng));
        }
        text.push_str(t);
    }
    if rng.chance(20) {
        text.push_str(space(rng));
    }
    text
}

/// One way of making an object invalid; the object it lands in is the one
/// the error must name.
fn invalid_object(rng: &mut Rng) -> String {
    let mut tokens = valid_object_tokens(rng, 8);
    let at = rng.below(tokens.len() + 1);
    let bad = match rng.below(14) {
        0 => {
            let name = rng.pick(&["dot", "boxes", "pt", "negative", "poİnt", "b0x", "", "é"]);
            format!("{name}={}", numbers(rng, 2))
        }
        1 => {
            let n = *rng.pick(&[0usize, 1, 2, 3, 5, 6, 8, 100]);
            if n == 0 {
                format!("{}=", key(rng, "box"))
            } else {
                format!("{}={}", key(rng, "box"), numbers(rng, n))
            }
        }
        2 => {
            let n = *rng.pick(&[1usize, 3, 4, 7]);
            let name = *rng.pick(&["point", "neg"]);
            format!("{}={}", key(rng, name), numbers(rng, n))
        }
        3 => format!(
            "{}={},{}",
            key(rng, "point"),
            valid_number(rng),
            not_a_number(rng)
        ),
        4 => format!(
            "{}={},{}",
            key(rng, "neg"),
            out_of_range_number(rng),
            valid_number(rng)
        ),
        5 => {
            let mut values: Vec<String> = (0..4).map(|_| valid_number(rng)).collect();
            let i = rng.below(4);
            values[i] = out_of_range_number(rng);
            format!("{}={}", key(rng, "box"), values.join(","))
        }
        6 => format!(
            "{}={},,{}",
            key(rng, "point"),
            valid_number(rng),
            valid_number(rng)
        ),
        7 => format!(
            "{}={},{},",
            key(rng, "point"),
            valid_number(rng),
            valid_number(rng)
        ),
        8 => rng
            .pick(&["point", "box", "neg", "=", "1,2", "point:1,2"])
            .to_string(),
        9 => format!("point=={},{}", valid_number(rng), valid_number(rng)),
        10 => {
            // A second box.
            tokens.retain(|t| !t.to_ascii_lowercase().starts_with("box"));
            tokens.push(format!("box={}", numbers(rng, 4)));
            format!("BOX={}", numbers(rng, 4))
        }
        11 => {
            // Negative points only.
            let n = rng.int(1, 5) as usize;
            let negatives: Vec<String> =
                (0..n).map(|_| format!("neg={}", numbers(rng, 2))).collect();
            return join_tokens(rng, &negatives);
        }
        12 => {
            // More points than one object may have.
            let extra = if rng.chance(90) { 4 } else { 200 };
            let n = MAX_POINTS_PER_PROMPT + 1 + rng.below(extra);
            let mut points: Vec<String> = (0..n)
                .map(|_| format!("point={}", numbers(rng, 2)))
                .collect();
            if rng.chance(50) {
                points.push(format!("box={}", numbers(rng, 4)));
            }
            return join_tokens(rng, &points);
        }
        _ => format!("{}={}é", key(rng, "point"), numbers(rng, 2)),
    };
    tokens.insert(at.min(tokens.len()), bad);
    join_tokens(rng, &tokens)
}

/// What parsing a generated text must give.
enum Expect {
    Ok(Vec<Prompt>),
    /// An error naming this 1-based object.
    ErrAt(usize),
    /// Anything, as long as the general properties hold.
    Any,
}

/// The prompt of a valid object, built independently of the parser from the
/// tokens (numbers by the standard library's parse, as the grammar says).
fn expected_prompt(tokens: &str) -> Prompt {
    let mut prompt = Prompt::new();
    for token in tokens.split_whitespace() {
        let (k, v) = token.split_once('=').unwrap();
        let n: Vec<f32> = v.split(',').map(|x| x.parse().unwrap()).collect();
        prompt = match k.to_ascii_lowercase().as_str() {
            "box" => prompt.with_box(n[0], n[1], n[2], n[3]),
            "point" => prompt.with_point(n[0], n[1]),
            "neg" => prompt.with_negative(n[0], n[1]),
            other => unreachable!("generator key {other}"),
        };
    }
    prompt
}

/// Empty objects between the real ones, as `;;` or `; ;`.
fn empty_object(rng: &mut Rng) -> String {
    rng.pick(&["", " ", "\t", "\n ", "\u{3000}"]).to_string()
}

/// Objects joined by `;`, with empty ones mixed in; returns the text and
/// the 1-based object numbers of the real objects.
fn join_objects(rng: &mut Rng, objects: &[String], empties: u64) -> (String, Vec<usize>) {
    let mut parts = Vec::new();
    let mut numbers = Vec::new();
    if rng.chance(empties) {
        parts.push(empty_object(rng));
    }
    for o in objects {
        while rng.chance(empties) {
            parts.push(empty_object(rng));
        }
        parts.push(o.clone());
        numbers.push(parts.len());
    }
    if rng.chance(empties * 2) {
        parts.push(empty_object(rng));
    }
    (parts.join(";"), numbers)
}

fn structured_valid(rng: &mut Rng, count: usize) -> (String, Expect) {
    let objects: Vec<String> = (0..count)
        .map(|_| {
            let tokens = valid_object_tokens(rng, MAX_POINTS_PER_PROMPT);
            join_tokens(rng, &tokens)
        })
        .collect();
    let expected = objects.iter().map(|o| expected_prompt(o)).collect();
    let (text, _) = join_objects(rng, &objects, 10);
    (text, Expect::Ok(expected))
}

fn structured_invalid(rng: &mut Rng) -> (String, Expect) {
    let count = rng.int(1, 6) as usize;
    let bad = rng.below(count);
    let objects: Vec<String> = (0..count)
        .map(|i| {
            if i == bad {
                invalid_object(rng)
            } else {
                let tokens = valid_object_tokens(rng, 6);
                join_tokens(rng, &tokens)
            }
        })
        .collect();
    let (text, numbers) = join_objects(rng, &objects, 10);
    (text, Expect::ErrAt(numbers[bad]))
}

/// Near and above the object limit.
fn many_objects(rng: &mut Rng) -> (String, Expect) {
    let count = if rng.chance(50) {
        MAX_PROMPTS - rng.below(3)
    } else {
        MAX_PROMPTS + 1 + rng.below(40)
    };
    let objects: Vec<String> = (0..count)
        .map(|_| format!("point={}", numbers(rng, 2)))
        .collect();
    let (text, numbers) = join_objects(rng, &objects, 3);
    if count <= MAX_PROMPTS {
        let expected = objects.iter().map(|o| expected_prompt(o)).collect();
        (text, Expect::Ok(expected))
    } else {
        (text, Expect::ErrAt(numbers[MAX_PROMPTS]))
    }
}

/// Large single pieces of text: error messages must still be short.
fn huge_input(rng: &mut Rng) -> (String, Expect) {
    let n = rng.int(2_000, 60_000) as usize;
    let prefix = if rng.chance(50) { "point=1,2; " } else { "" };
    let object = if prefix.is_empty() { 1 } else { 2 };
    let body = match rng.below(9) {
        0 => "x".repeat(n),
        1 => format!("{}=1,2", "k".repeat(n)),
        2 => format!("point={},1", "9".repeat(n)),
        3 => format!("point=1,{}", "a".repeat(n)),
        4 => format!("box={}1", "1,".repeat(n)),
        5 => "point=1,2 ".repeat(n / 8),
        6 => format!("point=1,2 {}", "é".repeat(n)),
        7 => format!("point={}", ",".repeat(n)),
        _ => format!("neg=1,2 {}", "neg=3,4 ".repeat(n / 8)),
    };
    (format!("{prefix}{body}"), Expect::ErrAt(object))
}

/// Grammar characters in random order.
fn token_soup(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "box", "point", "neg", "BOX", "=", "=", ",", ",", ";", " ", " ", "\t", "1", "2", "0", "-",
        "+", ".", "e", "E", "9", "nan", "inf", "1e6", "1e7", "é", "\u{3000}", "\u{0}", "ß", "😀",
        "\u{200b}", "\\", "\"", "'",
    ];
    let n = rng.int(0, 40);
    (0..n).map(|_| *rng.pick(PIECES)).collect()
}

/// Valid text with one random character inserted, deleted or replaced.
fn mutated(rng: &mut Rng) -> String {
    let count = rng.int(1, 4) as usize;
    let (text, _) = structured_valid(rng, count);
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..rng.int(1, 3) {
        let at = rng.below(chars.len() + 1);
        let c = *rng.pick(&[
            '=', ',', ';', ' ', '-', '.', 'e', '1', 'x', 'é', '\u{0}', '9',
        ]);
        match rng.below(3) {
            0 => chars.insert(at, c),
            1 if at < chars.len() => {
                chars.remove(at);
            }
            _ if at < chars.len() => chars[at] = c,
            _ => chars.push(c),
        }
    }
    chars.into_iter().collect()
}

fn random_bytes(rng: &mut Rng) -> String {
    let n = rng.below(80);
    let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn random_unicode(rng: &mut Rng) -> String {
    let n = rng.below(40);
    (0..n)
        .map(|_| match rng.below(4) {
            0 => char::from_u32(rng.int(0, 0x7f) as u32).unwrap(),
            1 => char::from_u32(rng.int(0x80, 0x7ff) as u32).unwrap(),
            2 => char::from_u32(rng.int(0x2000, 0x3000) as u32).unwrap(),
            _ => char::from_u32(rng.int(0x1_0000, 0x1_F9FF) as u32).unwrap_or('x'),
        })
        .collect()
}

fn generate(rng: &mut Rng) -> (&'static str, String, Expect) {
    match rng.below(1000) {
        0..=349 => {
            let count = if rng.chance(5) {
                rng.int(5, 40)
            } else {
                rng.int(1, 4)
            };
            let (text, expect) = structured_valid(rng, count as usize);
            ("valid", text, expect)
        }
        350..=649 => {
            let (text, expect) = structured_invalid(rng);
            ("invalid", text, expect)
        }
        650..=749 => ("mutated", mutated(rng), Expect::Any),
        750..=849 => ("soup", token_soup(rng), Expect::Any),
        850..=919 => ("bytes", random_bytes(rng), Expect::Any),
        920..=984 => ("unicode", random_unicode(rng), Expect::Any),
        985..=991 => {
            let (text, expect) = many_objects(rng);
            ("many objects", text, expect)
        }
        _ => {
            let (text, expect) = huge_input(rng);
            ("huge", text, expect)
        }
    }
}

fn within_limits(prompt: &Prompt) -> bool {
    let b = prompt.bbox().map(|b| [b.x0, b.y0, b.x1, b.y1]);
    let coords = prompt
        .points()
        .iter()
        .flat_map(|p| [p.x, p.y])
        .chain(b.into_iter().flatten());
    prompt.points().len() <= MAX_POINTS_PER_PROMPT
        && coords
            .into_iter()
            .all(|v| v.is_finite() && v.abs() <= MAX_COORDINATE)
}

fn check_ok(index: usize, text: &str, prompts: &[Prompt], failures: &mut Failures) {
    let case = || format!("case {index}: {}", excerpt(text));
    if prompts.len() > MAX_PROMPTS {
        failures.add("Ok has at most MAX_PROMPTS objects", case);
    }
    for p in prompts {
        if !within_limits(p) {
            failures.add("Ok prompts are within the limits", || {
                format!("{}; prompt {p:?}", case())
            });
        }
        if p.is_empty() {
            failures.add("Ok prompts are not empty", case);
        }
        match p.to_string().parse::<Prompt>() {
            Ok(back) if back == *p => {}
            other => failures.add("Display parses back to the same prompt", || {
                format!(
                    "{}; {p:?} shown as {:?} parsed as {other:?}",
                    case(),
                    p.to_string()
                )
            }),
        }
    }
    // What the element reads back after a structured `prompt-list`.
    let joined = prompts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if parse_prompts(&joined).as_deref() != Ok(prompts) {
        failures.add("the joined text form parses back to the same list", case);
    }
}

fn check_err(index: usize, kind: &str, text: &str, err: &PromptError, failures: &mut Failures) {
    let message = err.to_string();
    let case = || format!("case {index}: {} -> {}", excerpt(text), excerpt(&message));
    let objects = text.split(';').count();
    if err.object == 0 || err.object > objects {
        failures.add("Err names an object that exists", case);
    }
    if message.chars().count() >= MAX_ERROR_CHARS {
        // One entry per kind of message: long words cut, digits hidden.
        let reason: String = err
            .reason
            .split(' ')
            .map(|w| if w.chars().count() > 24 { "…" } else { w })
            .collect::<Vec<_>>()
            .join(" ")
            .replace(|c: char| c.is_ascii_digit(), "#");
        failures.add(
            format!("Err Display is short ({kind} input: {reason})"),
            || format!("{} chars; {}", message.chars().count(), case()),
        );
    }
    if !message.contains(&format!("object {}", err.object)) {
        failures.add("Err Display names the object number", case);
    }
}

#[test]
fn parse_prompts_fuzz() {
    let seed = seed();
    let cases = env_or("TINYSAM_FUZZ_CASES", DEFAULT_CASES);
    let started = Instant::now();
    let mut failures = Failures::default();
    let mut by_kind: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut bytes = 0usize;
    for index in 0..cases {
        let mut rng = Rng::for_case(seed, index as u64);
        let (kind, text, expect) = generate(&mut rng);
        bytes += text.len();
        let result = parse_prompts(&text);
        let tally = by_kind.entry(kind).or_default();
        match &result {
            Ok(prompts) => {
                tally.0 += 1;
                check_ok(index, &text, prompts, &mut failures);
            }
            Err(err) => {
                tally.1 += 1;
                check_err(index, kind, &text, err, &mut failures);
            }
        }
        let case = || format!("case {index} ({kind}): {} -> {result:?}", excerpt(&text));
        match (&expect, &result) {
            (Expect::Ok(expected), Ok(prompts)) if expected == prompts => {}
            (Expect::Ok(_), _) => failures.add("valid text gives exactly its prompts", case),
            (Expect::ErrAt(object), Err(err)) if err.object == *object => {}
            (Expect::ErrAt(_), _) => failures.add("invalid text is rejected at its object", || {
                let mut c = case();
                c.truncate(2000);
                c
            }),
            (Expect::Any, _) => {}
        }
    }
    println!(
        "parse_prompts: {cases} cases ({:.1} MB of text, seed {seed:#x}) in {:.2?}; ok/err by kind: {by_kind:?}",
        bytes as f64 / 1e6,
        started.elapsed()
    );
    failures.assert_none("parse_prompts fuzz");
}

// ---------------------------------------------------------------------------
// The element's properties
// ---------------------------------------------------------------------------

/// GLib and GStreamer criticals and warnings logged so far, and the first.
static LOGGED: Mutex<(usize, String)> = Mutex::new((0, String::new()));

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("gst::init");
        gsttinysam::plugin_register_static().expect("register the tinysam plugin");
        for domain in ["GStreamer", "GLib-GObject", "GLib"] {
            glib::log_set_handler(
                Some(domain),
                glib::LogLevels::LEVEL_CRITICAL | glib::LogLevels::LEVEL_WARNING,
                false,
                false,
                |domain, level, message| {
                    eprintln!("{domain:?} {level:?}: {message}");
                    let mut logged = LOGGED.lock().unwrap_or_else(|e| e.into_inner());
                    if logged.0 == 0 {
                        logged.1 = format!("{domain:?} {level:?}: {message}");
                    }
                    logged.0 += 1;
                },
            );
        }
    });
}

const PROMPT_STRUCTURE: &str = "tinysam/prompt";

/// A valid structure name other than `tinysam/prompt`.
fn other_structure_name(rng: &mut Rng) -> String {
    let fixed = [
        "tinysam/Prompt",
        "tinysam/prompts",
        "tinysam/box",
        "prompt",
        "tinysam",
        "a-b_c.d:e+f/g",
        "video/x-raw",
    ];
    if rng.chance(70) {
        return rng.pick(&fixed).to_string();
    }
    const FIRST: &[u8] = b"abcxyzABCXYZ";
    const REST: &[u8] = b"abcxyzABC0129/-_.:+";
    let n = if rng.chance(10) {
        rng.int(500, 5000)
    } else {
        rng.int(0, 40)
    } as usize;
    let mut name = String::new();
    name.push(*rng.pick(FIRST) as char);
    name.extend((0..n).map(|_| *rng.pick(REST) as char));
    if name == PROMPT_STRUCTURE {
        name.push('x');
    }
    name
}

fn unknown_field_name(rng: &mut Rng) -> String {
    let fixed = [
        "point", "Box", "boxes", "negative", "neg", "pts", "x", "box ", "points2",
    ];
    if rng.chance(70) {
        return rng.pick(&fixed).to_string();
    }
    const CHARS: &[u8] = b"abcdefxyz-_0189";
    let n = if rng.chance(10) {
        rng.int(500, 5000)
    } else {
        rng.int(1, 40)
    } as usize;
    let name: String = (0..n).map(|_| *rng.pick(CHARS) as char).collect();
    if ["box", "points", "negatives"].contains(&name.as_str()) {
        format!("{name}_")
    } else {
        name
    }
}

/// The numeric types the element accepts in a number array. A
/// `GstValueArray` holds values of one type only (appending another type is
/// refused with a CRITICAL), so each generated array has one.
#[derive(Clone, Copy, Debug)]
enum Num {
    F64,
    F32,
    I32,
    U32,
    I64,
    U64,
}

impl Num {
    fn random(rng: &mut Rng) -> Num {
        *rng.pick(&[
            Num::F64,
            Num::F64,
            Num::F64,
            Num::F32,
            Num::I32,
            Num::U32,
            Num::I64,
            Num::U64,
        ])
    }

    /// A coordinate the element must accept, and the f32 it stands for.
    fn valid(self, rng: &mut Rng) -> (glib::SendValue, f32) {
        let limit = f64::from(MAX_COORDINATE);
        let int_limit = limit as i64;
        match self {
            Num::F64 => {
                let v = match rng.below(6) {
                    0 => *rng.pick(&[0.0f64, -0.0, 1e6, -1e6, 1e-300, 5e-324]),
                    1 | 2 => f64::from(rng.float(-limit, limit) as f32),
                    _ => f64::from(rng.float(-2000.0, 2000.0) as f32),
                };
                (v.to_send_value(), v as f32)
            }
            Num::F32 => {
                let v = if rng.chance(50) {
                    rng.float(0.0, 1.0) as f32
                } else {
                    rng.float(-limit, limit) as f32
                };
                (v.to_send_value(), v)
            }
            Num::I32 => {
                let v = if rng.chance(80) {
                    rng.int(-1000, 1000)
                } else {
                    rng.int(-int_limit, int_limit)
                } as i32;
                (v.to_send_value(), v as f32)
            }
            Num::U32 => {
                let v = rng.int(0, int_limit) as u32;
                (v.to_send_value(), v as f32)
            }
            Num::I64 => {
                let v = rng.int(-int_limit, int_limit);
                (v.to_send_value(), v as f32)
            }
            Num::U64 => {
                let v = rng.int(0, int_limit) as u64;
                (v.to_send_value(), v as f32)
            }
        }
    }

    /// A value of this type that is non-finite or beyond the limit.
    fn bad(self, rng: &mut Rng) -> glib::SendValue {
        match self {
            Num::F64 => rng
                .pick(&[
                    f64::NAN,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    1e300,
                    -1e300,
                    1_000_001.5,
                ])
                .to_send_value(),
            Num::F32 => rng
                .pick(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 3e38, -1e7])
                .to_send_value(),
            Num::I32 => rng
                .pick(&[2_000_000i32, -1_000_001, i32::MIN, i32::MAX])
                .to_send_value(),
            Num::U32 => rng.pick(&[1_000_001u32, u32::MAX]).to_send_value(),
            Num::I64 => rng
                .pick(&[i64::MIN, i64::MAX, 10_000_000i64])
                .to_send_value(),
            Num::U64 => rng.pick(&[1_000_001u64, u64::MAX]).to_send_value(),
        }
    }
}

/// `count` valid coordinates of one random type, and their f32 values.
fn coordinates(rng: &mut Rng, count: usize) -> (Vec<glib::SendValue>, Vec<f32>) {
    let ty = Num::random(rng);
    (0..count).map(|_| ty.valid(rng)).unzip()
}

/// `count` values of one type that is not a number, to fill a number array.
fn not_numbers(rng: &mut Rng, count: usize) -> Vec<glib::SendValue> {
    let kind = rng.below(9);
    (0..count)
        .map(|i| match kind {
            0 => "1".to_send_value(),
            1 => "box=1,2,3,4".to_send_value(),
            2 => (i % 2 == 0).to_send_value(),
            3 => 7i8.to_send_value(),
            4 => 7u8.to_send_value(),
            5 => gst::Fraction::new(1, 2).to_send_value(),
            6 => gst::List::new([1.0f64, 2.0]).to_send_value(),
            7 => glib::Bytes::from_static(b"12").to_send_value(),
            _ => gst::Structure::new_empty(PROMPT_STRUCTURE).to_send_value(),
        })
        .collect()
}

/// Arrays of arrays, `depth` deep, numbers and arrays mixed at each level;
/// built value by value (parsing one from a string crashes GStreamer 1.22).
/// Every number in one tree has the same type, as `GstValueArray` requires.
fn nested_array(rng: &mut Rng, depth: usize) -> gst::Array {
    fn level(rng: &mut Rng, ty: Num, depth: usize) -> gst::Array {
        let n = rng.below(4);
        let mut values: Vec<glib::SendValue> = (0..n).map(|_| ty.valid(rng).0).collect();
        if depth > 0 {
            for _ in 0..rng.int(1, 2) {
                let at = rng.below(values.len() + 1);
                values.insert(at, level(rng, ty, depth - 1).to_send_value());
            }
        }
        gst::Array::from_values(values)
    }
    let ty = Num::random(rng);
    level(rng, ty, depth)
}

/// A field value that is not an array of numbers at all.
fn wrong_field_value(rng: &mut Rng) -> glib::SendValue {
    match rng.below(9) {
        0 => "1,2,3,4".to_send_value(),
        1 => 5i32.to_send_value(),
        2 => 5.0f64.to_send_value(),
        3 => false.to_send_value(),
        4 => gst::List::new([1.0f64, 2.0, 3.0, 4.0]).to_send_value(),
        5 => gst::Structure::builder(PROMPT_STRUCTURE)
            .field("box", gst::Array::new([1.0f64, 2.0, 3.0, 4.0]))
            .build()
            .to_send_value(),
        6 => glib::Bytes::from_static(b"\x00\x01").to_send_value(),
        7 => gst::Fraction::new(4, 3).to_send_value(),
        _ => gst::IntRange::new(1, 4).to_send_value(),
    }
}

/// A valid object as a structure, and the prompt it stands for.
fn valid_structure(rng: &mut Rng) -> (gst::Structure, Prompt) {
    let mut s = gst::Structure::new_empty(PROMPT_STRUCTURE);
    let mut prompt = Prompt::new();
    let with_box = rng.chance(60);
    if with_box {
        let (values, b) = coordinates(rng, 4);
        s.set_value("box", gst::Array::from_values(values).to_send_value());
        prompt = prompt.with_box(b[0], b[1], b[2], b[3]);
    }
    let total = match rng.below(20) {
        0 => MAX_POINTS_PER_PROMPT,
        1 => rng.below(MAX_POINTS_PER_PROMPT + 1),
        _ => rng.below(4),
    };
    let positives = if with_box {
        rng.below(total + 1)
    } else {
        rng.int(1, total.max(1) as i64) as usize
    };
    let negatives = total.saturating_sub(positives);
    let (pos_values, pos) = coordinates(rng, positives * 2);
    let (neg_values, neg) = coordinates(rng, negatives * 2);
    if !pos_values.is_empty() || rng.chance(10) {
        s.set_value(
            "points",
            gst::Array::from_values(pos_values).to_send_value(),
        );
    }
    if !neg_values.is_empty() || rng.chance(10) {
        s.set_value(
            "negatives",
            gst::Array::from_values(neg_values).to_send_value(),
        );
    }
    for xy in pos.chunks_exact(2) {
        prompt = prompt.with_point(xy[0], xy[1]);
    }
    for xy in neg.chunks_exact(2) {
        prompt = prompt.with_negative(xy[0], xy[1]);
    }
    (s, prompt)
}

/// An object structure that must be rejected.
fn invalid_structure(rng: &mut Rng) -> gst::Structure {
    let (mut s, _) = valid_structure(rng);
    let numbers = |rng: &mut Rng, n: usize| gst::Array::from_values(coordinates(rng, n).0);
    match rng.below(12) {
        0 => s.set_name(other_structure_name(rng).as_str()),
        1 => s.set_value(
            unknown_field_name(rng).as_str(),
            numbers(rng, 2).to_send_value(),
        ),
        2 => {
            let n = *rng.pick(&[0usize, 1, 2, 3, 5, 8, 100]);
            s.set_value("box", numbers(rng, n).to_send_value());
        }
        3 => {
            let field = *rng.pick(&["points", "negatives"]);
            let n = 2 * rng.below(4) + 1;
            s.set_value(field, numbers(rng, n).to_send_value());
        }
        4 | 5 => {
            let field = *rng.pick(&["box", "points", "negatives"]);
            let n = if field == "box" {
                4
            } else {
                2 * rng.int(1, 3) as usize
            };
            let ty = Num::random(rng);
            let mut values: Vec<glib::SendValue> = (0..n).map(|_| ty.valid(rng).0).collect();
            if rng.chance(50) {
                let at = rng.below(n);
                values[at] = ty.bad(rng);
            } else {
                values = not_numbers(rng, n);
            }
            s.set_value(field, gst::Array::from_values(values).to_send_value());
        }
        6 => {
            let field = *rng.pick(&["box", "points", "negatives"]);
            s.set_value(field, wrong_field_value(rng));
        }
        7 => {
            let field = *rng.pick(&["box", "points", "negatives"]);
            let depth = rng.int(1, 6) as usize;
            s.set_value(field, nested_array(rng, depth).to_send_value());
        }
        8 => {
            // Negative points only, or nothing at all.
            s.remove_fields(["box", "points"]);
            if rng.chance(70) {
                let n = 2 * rng.int(1, 3) as usize;
                s.set_value("negatives", numbers(rng, n).to_send_value());
            }
        }
        9 => {
            let n = MAX_POINTS_PER_PROMPT + 1 + rng.below(40);
            s.set_value("points", numbers(rng, 2 * n).to_send_value());
        }
        10 => {
            // Too many points in all, split between the two fields.
            let n = MAX_POINTS_PER_PROMPT + 1 + rng.below(10);
            let k = rng.int(1, n as i64 - 1) as usize;
            s.set_value("points", numbers(rng, 2 * k).to_send_value());
            s.set_value("negatives", numbers(rng, 2 * (n - k)).to_send_value());
        }
        _ => {
            s.set_name(other_structure_name(rng).as_str());
            s.set_value(unknown_field_name(rng).as_str(), wrong_field_value(rng));
        }
    }
    s
}

/// A structure with random fields of random types: valid or not.
fn chaos_structure(rng: &mut Rng) -> gst::Structure {
    let name = if rng.chance(80) {
        PROMPT_STRUCTURE.to_owned()
    } else {
        other_structure_name(rng)
    };
    let mut s = gst::Structure::new_empty(name.as_str());
    for _ in 0..rng.below(4) {
        let field = match rng.below(5) {
            0 => unknown_field_name(rng),
            _ => rng.pick(&["box", "points", "negatives"]).to_string(),
        };
        let value = match rng.below(6) {
            0 => wrong_field_value(rng),
            1 => {
                let depth = rng.int(1, 4) as usize;
                nested_array(rng, depth).to_send_value()
            }
            _ => {
                let n = rng.below(9);
                let ty = Num::random(rng);
                let values: Vec<glib::SendValue> = match rng.below(10) {
                    0 => (0..n)
                        .map(|_| {
                            if rng.chance(30) {
                                ty.bad(rng)
                            } else {
                                ty.valid(rng).0
                            }
                        })
                        .collect(),
                    1 => not_numbers(rng, n),
                    _ => (0..n).map(|_| ty.valid(rng).0).collect(),
                };
                gst::Array::from_values(values).to_send_value()
            }
        };
        s.set_value(field.as_str(), value);
    }
    s
}

/// A `prompt-list` value and, when known, the prompts it must give
/// (`Some(None)`: must be rejected; `None`: unknown).
fn prompt_list_case(rng: &mut Rng) -> (gst::Array, Option<Option<Vec<Prompt>>>) {
    match rng.below(100) {
        0..=34 => {
            let n = if rng.chance(3) {
                MAX_PROMPTS - rng.below(2)
            } else {
                rng.below(5)
            };
            let (structures, prompts): (Vec<_>, Vec<_>) =
                (0..n).map(|_| valid_structure(rng)).unzip();
            (gst::Array::new(structures), Some(Some(prompts)))
        }
        35..=74 => {
            let n = rng.int(1, 5) as usize;
            let bad = rng.below(n);
            let structures: Vec<gst::Structure> = (0..n)
                .map(|i| {
                    if i == bad {
                        invalid_structure(rng)
                    } else {
                        valid_structure(rng).0
                    }
                })
                .collect();
            (gst::Array::new(structures), Some(None))
        }
        75..=76 => {
            let n = MAX_PROMPTS + 1 + rng.below(10);
            let structures: Vec<gst::Structure> = (0..n).map(|_| valid_structure(rng).0).collect();
            (gst::Array::new(structures), Some(None))
        }
        _ => {
            let n = rng.below(4);
            let structures: Vec<gst::Structure> = (0..n).map(|_| chaos_structure(rng)).collect();
            (gst::Array::new(structures), None)
        }
    }
}

/// A `prompts` string and whether it must be accepted, when known.
fn prompts_case(rng: &mut Rng) -> (String, Option<bool>) {
    let (_, text, expect) = generate(rng);
    let valid = match expect {
        Expect::Ok(_) => Some(true),
        Expect::ErrAt(_) => Some(false),
        Expect::Any => None,
    };
    (text, valid)
}

fn read_prompts(sam: &gst::Element) -> String {
    sam.property::<Option<String>>("prompts")
        .unwrap_or_default()
}

/// Pops everything on the bus; returns the warnings' messages.
fn drain(bus: &gst::Bus) -> Vec<String> {
    let mut warnings = Vec::new();
    while let Some(msg) = bus.pop() {
        match msg.view() {
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            gst::MessageView::Error(e) => panic!("error on the bus: {}", e.error()),
            _ => {}
        }
    }
    warnings
}

#[test]
fn element_keeps_the_last_valid_prompts() {
    init();
    let seed = seed();
    let sets = env_or("TINYSAM_FUZZ_SETS", DEFAULT_SETS);
    let started = Instant::now();
    let pipeline = gst::Pipeline::new();
    let sam = gst::ElementFactory::make("tinysam")
        .build()
        .expect("a tinysam element");
    pipeline.add(&sam).unwrap();
    let bus = pipeline.bus().unwrap();

    let mut current = "box=10,20,110,120; point=50,60".to_owned();
    sam.set_property("prompts", &current);
    assert_eq!(read_prompts(&sam), current);
    assert!(drain(&bus).is_empty(), "a valid prompt gives no warning");

    let mut failures = Failures::default();
    let (mut accepted, mut rejected, mut longest_warning) = (0usize, 0usize, 0usize);
    for index in 0..sets {
        let mut rng = Rng::for_case(seed ^ ELEMENT_STREAM, index as u64);
        let structured = rng.chance(50);
        let (case, valid, expected_text) = if structured {
            let (array, expect) = prompt_list_case(&mut rng);
            let case = format!(
                "case {index}: prompt-list {}",
                excerpt(&format!("{array:?}"))
            );
            sam.set_property("prompt-list", &array);
            let expected_text = match &expect {
                Some(Some(prompts)) => Some(
                    prompts
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                _ => None,
            };
            (case, expect.map(|e| e.is_some()), expected_text)
        } else {
            let (mut text, mut valid) = prompts_case(&mut rng);
            // A C string ends at the first NUL: leave NULs to the unit test.
            if text.contains('\0') {
                text = text.replace('\0', "");
                valid = None;
            }
            let valid = Some(valid.unwrap_or_else(|| parse_prompts(&text).is_ok()));
            let case = format!("case {index}: prompts {}", excerpt(&text));
            sam.set_property("prompts", &text);
            (case, valid, Some(text))
        };
        let warnings = drain(&bus);
        let now = read_prompts(&sam);
        longest_warning = longest_warning.max(
            warnings
                .iter()
                .map(|w| w.chars().count())
                .max()
                .unwrap_or(0),
        );
        // Unknown validity: the bus says which it was.
        let valid = valid.unwrap_or(warnings.is_empty());
        if valid {
            accepted += 1;
            if !warnings.is_empty() {
                failures.add("a valid value posts no warning", || {
                    format!("{case}: {warnings:?}")
                });
            }
            match &expected_text {
                Some(expected) if now != *expected => failures
                    .add("a valid value reads back as the new prompts", || {
                        format!("{case}: read {}", excerpt(&now))
                    }),
                // Structured value of unknown validity that was accepted:
                // what reads back must be valid text within the limits.
                None => match parse_prompts(&now) {
                    Ok(prompts)
                        if prompts.len() <= MAX_PROMPTS && prompts.iter().all(within_limits) => {}
                    other => failures.add("accepted prompts read back as valid text", || {
                        format!("{case}: read {} -> {other:?}", excerpt(&now))
                    }),
                },
                _ => {}
            }
            if structured {
                let list = sam.property::<gst::Array>("prompt-list");
                if parse_prompts(&now).map(|p| p.len()).ok() != Some(list.len()) {
                    failures.add("prompt-list reads back as many objects as prompts", || {
                        case.clone()
                    });
                }
            }
            current = now;
        } else {
            rejected += 1;
            if warnings.len() != 1 {
                failures.add("an invalid value posts one warning", || {
                    format!("{case}: {warnings:?}")
                });
            }
            if now != current {
                failures.add("an invalid value keeps the previous prompts", || {
                    format!(
                        "{case}: read {} instead of {}",
                        excerpt(&now),
                        excerpt(&current)
                    )
                });
            }
            if let Some(w) = warnings.first() {
                if !w.contains("keeping the previous prompts") {
                    failures.add("the warning says the prompts are kept", || {
                        format!("{case}: {w}")
                    });
                }
                // The message quotes the input cut short, like parse_prompts'
                // errors, with room for the property's own words.
                if w.chars().count() >= 2 * MAX_ERROR_CHARS {
                    let property = if structured { "prompt-list" } else { "prompts" };
                    failures.add(format!("the {property} warning message is short"), || {
                        format!("{} chars; {case}: {}", w.chars().count(), excerpt(w))
                    });
                }
            }
        }
    }
    drop(pipeline);
    let logged = LOGGED.lock().unwrap().clone();
    if logged.0 > 0 {
        failures.add("no GLib or GStreamer criticals and warnings", || {
            format!("{} logged; first: {}", logged.0, logged.1)
        });
    }
    println!(
        "element: {sets} property sets (seed {seed:#x}) in {:.2?}: {accepted} accepted, {rejected} rejected; \
         longest warning message {longest_warning} chars",
        started.elapsed()
    );
    failures.assert_none("tinysam properties fuzz");
}

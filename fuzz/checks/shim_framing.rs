//! The shim's line framing: however stdin is cut into reads, the frames are
//! the lines of the whole input, endings stripped, empties dropped; with a
//! limit, each line over it comes out as too long, with its length, and the
//! framer never holds much more than the limit.
//! Shared by the fuzz target and its corpus replay in `cargo test`.

use zen_shim::framing::{Line, LineFramer, frame_all};

/// Panics when the framing of `data` (first byte: the read sizes) is wrong.
pub fn check(data: &[u8]) {
    // The first byte picks the read sizes; the rest is the input.
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let frames = frames_of(input, usize::MAX, seed);
    let reference: Vec<Vec<u8>> = input
        .split(|b| *b == b'\n')
        .map(|line| {
            let mut line = line.to_vec();
            while matches!(line.last(), Some(b'\r')) {
                line.pop();
            }
            line
        })
        .filter(|line| !line.is_empty())
        .collect();
    assert_eq!(frames, reference);
    assert_eq!(frame_all(input), reference);

    // Lines over a small limit (counted before trimming) are reported as such.
    let limit = usize::from(seed % 16) + 1;
    let limited = frames_of(input, limit, seed);
    let expected: Vec<Vec<u8>> = input
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            if line.len() > limit {
                return Some(b"<long>".to_vec());
            }
            let mut trimmed = line;
            while let [rest @ .., b'\r'] = trimmed {
                trimmed = rest;
            }
            (!trimmed.is_empty()).then(|| trimmed.to_vec())
        })
        .collect();
    assert_eq!(limited, expected, "limit {limit}");
}

/// The frames of `input` read in pieces `seed` picks; a line over `limit` as `<long>`.
fn frames_of(input: &[u8], limit: usize, seed: u8) -> Vec<Vec<u8>> {
    let mut framer = LineFramer::with_limit(limit);
    let mut frames = Vec::new();
    let mut rest = input;
    let mut step = usize::from(seed % 7) + 1;
    let take = |line: Line, frames: &mut Vec<Vec<u8>>| match line {
        Line::Frame(frame) => frames.push(frame),
        Line::TooLong(long) => {
            assert!(long.bytes > limit, "{} bytes reported too long", long.bytes);
            frames.push(b"<long>".to_vec());
        }
    };
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(step.min(rest.len()));
        framer.push(chunk);
        while let Some(line) = framer.next_line() {
            take(line, &mut frames);
        }
        assert!(
            framer.buffered() <= limit,
            "holds {} bytes with a limit of {limit}",
            framer.buffered()
        );
        rest = tail;
        step = step * 3 % 11 + 1;
    }
    if let Some(line) = framer.finish() {
        take(line, &mut frames);
    }
    frames
}

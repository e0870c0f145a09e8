//! The shim's line framing: however stdin is cut into reads, the frames are
//! the lines of the whole input, endings stripped, empties dropped.
//! Shared by the fuzz target and its corpus replay in `cargo test`.

use zen_shim::framing::{LineFramer, frame_all};

/// Panics when the framing of `data` (first byte: the read sizes) is wrong.
pub fn check(data: &[u8]) {
    // The first byte picks the read sizes; the rest is the input.
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let mut framer = LineFramer::new();
    let mut frames = Vec::new();
    let mut rest = input;
    let mut step = usize::from(seed % 7) + 1;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(step.min(rest.len()));
        framer.push(chunk);
        while let Some(line) = framer.next_line() {
            frames.push(line);
        }
        rest = tail;
        step = step * 3 % 11 + 1;
    }
    frames.extend(framer.finish());

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
}

//! Long answers in pages, so every tool result fits what assistants show inline.
//!
//! Claude Code, Codex CLI and Gemini CLI each mangle a long tool result before
//! their model sees it (a file pointer instead of the text, a silent cut, a lost
//! middle), and the continuation id printed last went with it. So zen keeps each
//! result within the session's result budget (`server.yaml`, per client name): a
//! model answer over it is sent as its first page between a one-line header and
//! the footer (both carry the continuation id), with a note saying how much is
//! left and which `threads` call returns the next page ([`read_page`]). The
//! thread always stores the whole answer; pages are byte ranges of that stored
//! text, so reading them in order gives it back byte for byte, whatever budget
//! each read had.
//!
//! [`Splitter`] picks where a page ends: the last paragraph end (a blank line,
//! a closed code fence, before a heading or a fence) that fills at least half
//! the page, else the last line end; never inside a fenced code block, unless
//! one block is longer than a page (then at a line end inside it).

use std::ops::Range;

/// The smallest page zen sends: a budget too small for the header, note and
/// footer plus this much answer is exceeded rather than sending nothing.
const MIN_PAGE: usize = 512;

/// What a line end is, as a place to end a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    /// After a blank line or a closing fence, or before a heading or an opening fence.
    Paragraph,
    /// Any other line end outside a fenced code block.
    Line,
    /// A line end inside a fenced code block.
    InFence,
}

/// The places a text can be cut into pages.
pub struct Splitter<'a> {
    text: &'a str,
    /// Every line end (the offset just past its `\n`), ascending, with its kind.
    cuts: Vec<(usize, Cut)>,
}

impl<'a> Splitter<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut cuts: Vec<(usize, Cut)> = Vec::new();
        let mut fence: Option<(u8, usize)> = None;
        let mut start = 0;
        for line in text.split_inclusive('\n') {
            let content = line.trim_end_matches(['\n', '\r']);
            let kind = match fence {
                Some(open) if fence_closes(content, open) => {
                    fence = None;
                    Cut::Paragraph
                }
                Some(_) => Cut::InFence,
                None => {
                    let opened = fence_opens(content);
                    // Before a heading or a code block is as good a place as after a blank line.
                    if (opened.is_some() || content.trim_start().starts_with('#'))
                        && let Some(last) = cuts.last_mut()
                        && last.0 == start
                        && last.1 == Cut::Line
                    {
                        last.1 = Cut::Paragraph;
                    }
                    match opened {
                        Some(open) => {
                            fence = Some(open);
                            Cut::InFence
                        }
                        None if content.trim().is_empty() => Cut::Paragraph,
                        None => Cut::Line,
                    }
                }
            };
            start += line.len();
            if line.ends_with('\n') {
                cuts.push((start, kind));
            }
        }
        Self { text, cuts }
    }

    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Where the page that starts at `start` (a char boundary) and holds at
    /// most `room` bytes ends. Always past `start` unless the text ends there.
    pub fn page_end(&self, start: usize, room: usize) -> usize {
        let len = self.text.len();
        if len.saturating_sub(start) <= room {
            return len;
        }
        let limit = start + room;
        let first = self.cuts.partition_point(|&(at, _)| at <= start);
        let past = self.cuts.partition_point(|&(at, _)| at <= limit);
        let window = &self.cuts[first..past];
        let last = |wanted: fn(Cut) -> bool| {
            window
                .iter()
                .rev()
                .find(|(_, kind)| wanted(*kind))
                .map(|&(at, _)| at)
        };
        let paragraph = last(|kind| kind == Cut::Paragraph);
        let line = last(|kind| kind != Cut::InFence);
        match (paragraph, line) {
            (Some(at), _) if at - start >= room / 2 => at,
            (_, Some(at)) => at,
            // Only a code block longer than the page (or one long line) is left.
            _ => last(|_| true).unwrap_or_else(|| self.char_cut(start, limit)),
        }
    }

    /// The pages from `start` on, each at most `room` bytes.
    pub fn pages(&self, start: usize, room: usize) -> Vec<Range<usize>> {
        let mut pages = Vec::new();
        let mut at = start;
        while at < self.text.len() {
            let end = self.page_end(at, room);
            pages.push(at..end);
            at = end;
        }
        pages
    }

    /// The last char boundary at or before `limit`, past `start`.
    fn char_cut(&self, start: usize, limit: usize) -> usize {
        let mut end = limit;
        while end > start && !self.text.is_char_boundary(end) {
            end -= 1;
        }
        if end == start {
            end = limit;
            while !self.text.is_char_boundary(end) {
                end += 1;
            }
        }
        end
    }
}

/// `(marker, length)` when `line` opens a fenced code block: three or more
/// backticks or tildes (indented by anything: models indent fences in lists).
fn fence_opens(line: &str) -> Option<(u8, usize)> {
    let trimmed = line.trim_start();
    let marker = *trimmed.as_bytes().first()?;
    if marker != b'`' && marker != b'~' {
        return None;
    }
    let length = trimmed.bytes().take_while(|&b| b == marker).count();
    // A backtick in a backtick fence's info string makes it inline code instead.
    if length < 3 || (marker == b'`' && trimmed[length..].contains('`')) {
        return None;
    }
    Some((marker, length))
}

/// Whether `line` closes the fence `open`: the same marker, at least as many, nothing else.
fn fence_closes(line: &str, (marker, length): (u8, usize)) -> bool {
    let trimmed = line.trim();
    let run = trimmed.bytes().take_while(|&b| b == marker).count();
    run >= length && run == trimmed.len()
}

/// A model answer as a tool result: what goes around it and where it is stored.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// One line: the continuation id, then model, tokens, cost.
    pub header: String,
    /// Text between the header and the answer (a workflow's status); empty or ends with a newline.
    pub before: String,
    /// The answer exactly as turn `turn` of thread `thread` stores it.
    pub text: String,
    pub thread: String,
    /// The answer's turn on the thread, counted from 1.
    pub turn: u32,
    /// The lines after the `---` that ends the answer (model, notes, continuation).
    pub footer: String,
}

impl Answer {
    /// The result text: whole when it fits `budget` (bytes; `None` = no limit),
    /// else the first page with the note on how to read the rest.
    pub fn to_text(&self, budget: Option<usize>) -> String {
        let answer = self.text.trim_end();
        let whole = self.header.len() + self.before.len() + answer.len() + self.footer.len() + 7;
        match budget {
            Some(budget) if whole > budget => self.first_page(budget),
            _ => format!(
                "{}\n\n{}{answer}\n\n---\n{}",
                self.header, self.before, self.footer
            ),
        }
    }

    fn first_page(&self, budget: usize) -> String {
        let splitter = Splitter::new(&self.text);
        let total = splitter.len();
        let later_room = continuation_room(&self.thread, self.turn, total, budget);
        // Sized with every number at its widest, so the real ones fit.
        let suffix_room = header_suffix(total, total).len();
        let fixed = self.header.len()
            + suffix_room
            + Continues::widest(&self.thread, self.turn, total)
            + self.footer.len();
        let fixed = fixed + 16; // separators
        let mut before = self.before.clone();
        if fixed + before.len() + MIN_PAGE > budget && !before.is_empty() {
            let room = budget.saturating_sub(fixed + MIN_PAGE + CUT_MARK.len());
            let cut = Splitter::new(&self.before).page_end(0, room.max(1));
            before.truncate(cut);
            before.push_str(CUT_MARK);
        }
        let room = budget.saturating_sub(fixed + before.len()).max(MIN_PAGE);
        let end = splitter.page_end(0, room);
        let pages_left = splitter.pages(end, later_room).len();
        let note = Continues {
            thread: &self.thread,
            turn: self.turn,
            range: 0..end,
            total,
            pages_left,
        };
        let page = &self.text[..end];
        let newline = if page.ends_with('\n') { "" } else { "\n" };
        format!(
            "{}{}\n\n{before}{page}{newline}\n{note}\n\n---\n{}",
            self.header,
            header_suffix(total, pages_left),
            self.footer
        )
    }
}

/// Marks the status lines cut to leave the answer room.
const CUT_MARK: &str = "[zen] (the lines above were cut to fit the result budget)\n\n";

/// What the header adds when the answer comes in pages.
fn header_suffix(total: usize, pages_left: usize) -> String {
    format!(" · long answer ({total} bytes): page 1, {pages_left} more")
}

/// The note after a page: how much is left and the exact call for the next page.
struct Continues<'a> {
    thread: &'a str,
    turn: u32,
    range: Range<usize>,
    total: usize,
    pages_left: usize,
}

impl<'a> Continues<'a> {
    /// The longest note for a turn of `total` bytes (every number at its widest).
    fn widest(thread: &'a str, turn: u32, total: usize) -> usize {
        let note = Self {
            thread,
            turn,
            range: total..total,
            total: total + 1,
            pages_left: total,
        };
        note.to_string().len()
    }
}

impl std::fmt::Display for Continues<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            thread,
            turn,
            ref range,
            total,
            pages_left,
        } = *self;
        if range.end >= total {
            return write!(
                f,
                "[zen] End of turn {turn}: bytes {}-{} of {total} were its last page.",
                range.start, range.end
            );
        }
        let left = total - range.end;
        write!(
            f,
            "[zen] The answer continues: bytes {}-{} of {total} shown; {left} bytes (~{} tokens, {pages_left} \
             page{}) left. Next page: call the `threads` tool with \
             {{\"continuation_id\": \"{thread}\", \"turn\": {turn}, \"offset\": {}}} (each page names the \
             next), or read the whole answer from the resource zen://threads/{thread}/turns/{turn}.",
            range.start,
            range.end,
            left.div_ceil(4),
            if pages_left == 1 { "" } else { "s" },
            range.end
        )
    }
}

/// Why a page cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PageError {
    #[error(
        "offset {offset} is past the end of turn {turn} ({total} bytes); its last page was read"
    )]
    PastEnd {
        offset: usize,
        turn: u32,
        total: usize,
    },
    #[error("offset {offset} falls inside a character; pass the offset a page's note gave")]
    NotABoundary { offset: usize },
}

/// The page of turn `turn`'s `text` that starts at `offset`, as a `threads`
/// result within `budget` (`None` = the rest, whole).
pub fn read_page(
    thread: &str,
    turn: u32,
    text: &str,
    offset: usize,
    budget: Option<usize>,
) -> Result<String, PageError> {
    let total = text.len();
    if offset > total || (offset == total && total > 0) {
        return Err(PageError::PastEnd {
            offset,
            turn,
            total,
        });
    }
    if !text.is_char_boundary(offset) {
        return Err(PageError::NotABoundary { offset });
    }
    let splitter = Splitter::new(text);
    let room = budget.map_or(usize::MAX, |budget| {
        continuation_room(thread, turn, total, budget)
    });
    let end = splitter.page_end(offset, room);
    let pages_left = splitter.pages(end, room).len();
    let page = &text[offset..end];
    let newline = if page.ends_with('\n') { "" } else { "\n" };
    let note = Continues {
        thread,
        turn,
        range: offset..end,
        total,
        pages_left,
    };
    Ok(format!(
        "{}\n\n{page}{newline}\n{note}\n\n---\n{}",
        page_header(thread, turn, offset..end, total, pages_left),
        page_footer(thread)
    ))
}

fn page_header(
    thread: &str,
    turn: u32,
    range: Range<usize>,
    total: usize,
    pages_left: usize,
) -> String {
    format!(
        "[zen] continuation_id: {thread} · turn {turn} · bytes {}-{} of {total} · {pages_left} more page{}",
        range.start,
        range.end,
        if pages_left == 1 { "" } else { "s" }
    )
}

fn page_footer(thread: &str) -> String {
    format!("continuation_id: {thread} — pass it to any zen tool to continue this conversation.")
}

/// The room for answer text in a page [`read_page`] returns, so a first
/// result can say how many pages are left.
fn continuation_room(thread: &str, turn: u32, total: usize, budget: usize) -> usize {
    let fixed = page_header(thread, turn, total..total, total, total).len()
        + Continues::widest(thread, turn, total)
        + page_footer(thread).len()
        + 16;
    budget.saturating_sub(fixed).max(MIN_PAGE)
}

/// Any other result text within `budget`: cut at a paragraph or line end,
/// with a note saying so (such results are small; this is the safety net).
pub fn fit(text: String, budget: Option<usize>) -> String {
    let note = |end: usize| {
        format!(
            "\n\n[zen] This result was cut at byte {end} of {} to fit this client's result budget \
             ({} bytes; see `result_budget_bytes` in zen's server.yaml).",
            text.len(),
            budget.unwrap_or_default()
        )
    };
    match budget {
        Some(budget) if text.len() > budget => {
            let room = budget.saturating_sub(note(text.len()).len()).max(MIN_PAGE);
            let end = Splitter::new(&text).page_end(0, room);
            let mut cut = text[..end].trim_end().to_owned();
            cut.push_str(&note(end));
            cut
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages of `text` at `room`, checked: contiguous, within room, the whole text.
    fn split(text: &str, room: usize) -> Vec<&str> {
        let splitter = Splitter::new(text);
        let pages = splitter.pages(0, room);
        let mut at = 0;
        for page in &pages {
            assert_eq!(page.start, at);
            assert!(page.end > page.start);
            assert!(page.len() <= room, "{page:?} over {room}");
            at = page.end;
        }
        assert_eq!(at, text.len());
        pages.into_iter().map(|r| &text[r]).collect()
    }

    /// Whether a page boundary falls inside a fenced block.
    fn opens_fence_unclosed(page: &str) -> bool {
        let mut open = None;
        for line in page.lines() {
            open = match open {
                Some(o) if fence_closes(line, o) => None,
                Some(o) => Some(o),
                None => fence_opens(line),
            };
        }
        open.is_some()
    }

    #[test]
    fn short_text_is_one_page() {
        assert_eq!(split("hello\n\nworld", 100), vec!["hello\n\nworld"]);
        assert!(Splitter::new("").pages(0, 10).is_empty());
    }

    #[test]
    fn pages_end_at_paragraphs() {
        let text = "aaaa aaaa\nbbbb\n\ncccc cccc\ndddd\n\neeee\n";
        let pages = split(text, 20);
        assert_eq!(pages[0], "aaaa aaaa\nbbbb\n\n");
        assert!(pages.iter().all(|p| p.ends_with('\n')));
    }

    #[test]
    fn a_page_never_ends_inside_a_fenced_block() {
        let block = "```rust\nfn main() {\n\n    println!(\"hi\");\n}\n```\n";
        let prose = "Some words here.\n\n";
        let text =
            format!("{prose}{block}{prose}~~~~\ncode ```\n\n~~~\nstill code\n~~~~\n{prose}{block}");
        for room in 64..text.len() {
            for page in split(&text, room) {
                assert!(!opens_fence_unclosed(page), "room {room}: {page:?}");
            }
        }
    }

    #[test]
    fn a_block_longer_than_a_page_is_cut_at_line_ends() {
        let code: String = (0..50).map(|i| format!("let x{i} = {i};\n")).collect();
        let text = format!("intro\n\n```\n{code}```\n");
        let pages = split(&text, 100);
        assert_eq!(pages[0], "intro\n\n", "the block starts a page of its own");
        assert!(pages[1..].iter().all(|p| p.ends_with('\n')));
    }

    #[test]
    fn before_a_heading_is_a_paragraph_end() {
        let text = "line one is here\nline two is here\n# Heading\nmore text after it\n";
        assert_eq!(split(text, 50)[0], "line one is here\nline two is here\n");
    }

    #[test]
    fn a_small_paragraph_end_loses_to_a_fuller_line_end() {
        let text = "ab\n\ncccccccccc\ndddddddddd\neeeeeeeeee\nffffffffff\n";
        assert_eq!(
            split(text, 40)[0],
            "ab\n\ncccccccccc\ndddddddddd\neeeeeeeeee\n"
        );
    }

    #[test]
    fn one_long_line_is_cut_at_char_boundaries() {
        let text = "é".repeat(100);
        let pages = split(&text, 7);
        assert!(pages[..pages.len() - 1].iter().all(|page| page.len() == 6));
        let pages = Splitter::new("ééé").pages(0, 1);
        assert_eq!(
            pages,
            vec![0..2, 2..4, 4..6],
            "a page holds at least a char"
        );
    }

    #[test]
    fn an_unclosed_fence_runs_to_the_end() {
        let text = "start\n\n```\na\nb\nc\nd\n";
        let pages = split(text, 9);
        assert_eq!(pages[0], "start\n\n");
    }

    fn answer(text: &str) -> Answer {
        Answer {
            header: "[zen] continuation_id: T · m".into(),
            before: String::new(),
            text: text.into(),
            thread: "T".into(),
            turn: 2,
            footer: "model: m\ncontinuation_id: T (9 turns left)".into(),
        }
    }

    #[test]
    fn a_short_answer_is_whole() {
        let text = answer("Use a B-tree.\n").to_text(Some(4096));
        assert_eq!(
            text,
            "[zen] continuation_id: T · m\n\nUse a B-tree.\n\n---\nmodel: m\ncontinuation_id: T (9 turns left)"
        );
        assert_eq!(answer("x").to_text(None), answer("x").to_text(Some(4096)));
    }

    /// The page a result carries, by the byte range its note names.
    fn page_of(result: &str, header_end: usize) -> (&str, usize, usize) {
        let note = result.rfind("[zen] ").unwrap();
        let at = note + result[note..].find("bytes ").unwrap() + "bytes ".len();
        let (start, rest) = result[at..].split_once('-').unwrap();
        let end: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let (start, end): (usize, usize) = (start.parse().unwrap(), end.parse().unwrap());
        (&result[header_end..header_end + end - start], start, end)
    }

    #[test]
    fn a_long_answer_pages_back_byte_for_byte_within_the_budget() {
        let paragraph = "word ".repeat(60) + "\n\n```\ncode\n```\n\n";
        let text = paragraph.repeat(60) + "the end, no newline";
        let budget = 4096;
        let answer = answer(&text);
        let first = answer.to_text(Some(budget));
        assert!(first.len() <= budget, "{}", first.len());
        assert!(first.starts_with("[zen] continuation_id: T · m · long answer"));
        assert!(first.ends_with("continuation_id: T (9 turns left)"));
        let header_end = first.find("\n\n").unwrap() + 2;
        let (page, start, mut offset) = page_of(&first, header_end);
        assert_eq!(start, 0);
        assert!(first.contains(&format!("\"turn\": 2, \"offset\": {offset}}}")));
        let mut rebuilt = page.to_owned();
        let mut reads = 0;
        while offset < text.len() {
            let next = read_page("T", 2, &text, offset, Some(budget)).unwrap();
            assert!(next.len() <= budget, "{}", next.len());
            assert!(next.starts_with("[zen] continuation_id: T · turn 2"));
            assert!(next.contains("\n---\ncontinuation_id: T"));
            let header_end = next.find("\n\n").unwrap() + 2;
            let (page, start, end) = page_of(&next, header_end);
            assert_eq!(start, offset);
            assert!(!opens_fence_unclosed(page), "{page}");
            rebuilt.push_str(page);
            offset = end;
            reads += 1;
        }
        assert_eq!(rebuilt, text);
        assert!(reads >= 4, "{reads} pages after the first");
        let last = read_page("T", 2, &text, text.len() - 19, Some(budget)).unwrap();
        assert!(last.contains("End of turn 2"), "{last}");
    }

    #[test]
    fn bad_offsets_are_refused() {
        assert_eq!(
            read_page("T", 2, "é", 1, None),
            Err(PageError::NotABoundary { offset: 1 })
        );
        assert!(matches!(
            read_page("T", 2, "abc", 3, None),
            Err(PageError::PastEnd { .. })
        ));
        assert!(read_page("T", 2, "abc", 0, None).unwrap().contains("abc"));
    }

    #[test]
    fn long_status_lines_are_cut_before_the_answer_is() {
        let mut answer = answer(&"answer text\n".repeat(1000));
        answer.before = "note: a long note\n".repeat(1000);
        let text = answer.to_text(Some(4096));
        assert!(text.len() <= 4096, "{}", text.len());
        assert!(text.contains(CUT_MARK) && text.contains("answer text"));
    }

    #[test]
    fn other_results_are_cut_with_a_note() {
        let text = "line\n".repeat(2000);
        let cut = fit(text.clone(), Some(4096));
        assert!(cut.len() <= 4096 && cut.contains("This result was cut at"));
        assert_eq!(fit(text.clone(), None), text);
    }
}

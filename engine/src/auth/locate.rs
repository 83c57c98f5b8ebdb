//! Finds where keys and scalars sit in a block-style YAML file.
//!
//! `serde_yaml_ng` reports positions only for its own errors, so the domain loader asks this
//! module where a value is (`apps[0].publish_auth_check.checks[1]`) and gets a [`SourceMap`] that
//! maps each character of the decoded scalar to its line and column in the file. It understands
//! block mappings and sequences (including a sequence at its parent key's indentation) and plain,
//! single-quoted, double-quoted and literal (`|`) scalars. The decoded text is always compared with
//! what serde read; when they differ (flow style, folded or multi-line plain scalars) the caller
//! falls back to the start of the value, so positions are never silently wrong within a line.

use super::dsl::{Position, SourceMap};

/// One step of a path into the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seg<'a> {
    /// A mapping key.
    Key(&'a str),
    /// A sequence index.
    Index(usize),
}

/// A node: content starts at `line`/`col` (0-based, chars); its block ends before line `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Node {
    line: usize,
    col: usize,
    end: usize,
}

/// A located value: where its key (or `-`) is, and the value node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Located {
    /// Position of the key (or of the `-` of a sequence item).
    pub(crate) key: Position,
    node: Node,
}

impl Located {
    /// Position of the value's first character.
    pub(crate) fn value_pos(&self) -> Position {
        pos(self.node.line, self.node.col)
    }
}

fn pos(line: usize, col: usize) -> Position {
    Position::new(
        u32::try_from(line + 1).unwrap_or(u32::MAX),
        u32::try_from(col + 1).unwrap_or(u32::MAX),
    )
}

/// A YAML document split into lines of chars.
#[derive(Debug)]
pub(crate) struct Doc {
    lines: Vec<Vec<char>>,
}

impl Doc {
    pub(crate) fn new(text: &str) -> Self {
        Self {
            lines: text.lines().map(|l| l.chars().collect()).collect(),
        }
    }

    /// Indentation of a line with content; `None` for blank, comment-only and `---` lines.
    fn indent(&self, line: usize) -> Option<usize> {
        let l = self.lines.get(line)?;
        let i = l.iter().position(|c| *c != ' ')?;
        if l[i] == '#' || (i == 0 && l.starts_with(&['-', '-', '-'])) && l.len() == 3 {
            return None;
        }
        Some(i)
    }

    fn next_content(&self, from: usize, end: usize) -> Option<usize> {
        (from..end).find(|&l| self.indent(l).is_some())
    }

    fn root(&self) -> Option<Node> {
        let line = self.next_content(0, self.lines.len())?;
        Some(Node {
            line,
            col: self.indent(line)?,
            end: self.lines.len(),
        })
    }

    fn starts_item(&self, line: usize, col: usize) -> bool {
        let l = &self.lines[line];
        l.get(col) == Some(&'-') && matches!(l.get(col + 1), None | Some(' '))
    }

    /// The value after a key or `-` whose text ends at `after` on `line`; `block_col` is the
    /// column a block child must exceed (or equal, for a sequence).
    fn value_node(&self, line: usize, after: usize, parent_col: usize, end: usize) -> Option<Node> {
        let l = &self.lines[line];
        let mut c = after;
        while l.get(c) == Some(&' ') {
            c += 1;
        }
        if c < l.len() && l[c] != '#' {
            return Some(Node { line, col: c, end });
        }
        let first = self.next_content(line + 1, end)?;
        let ind = self.indent(first)?;
        if ind > parent_col || (ind == parent_col && self.starts_item(first, ind)) {
            Some(Node {
                line: first,
                col: ind,
                end,
            })
        } else {
            None
        }
    }

    /// Lines in `node` whose content starts at `node.col` (entries or items of the node).
    fn siblings(&self, node: Node) -> Vec<usize> {
        let mut out = vec![node.line];
        for l in node.line + 1..node.end {
            match self.indent(l) {
                Some(i) if i == node.col => out.push(l),
                Some(i) if i < node.col => break,
                _ => {}
            }
        }
        out
    }

    fn key_at(&self, line: usize, col: usize) -> Option<(String, usize)> {
        let l = &self.lines[line];
        let rest = l.get(col..)?;
        let (key, after) = match rest.first() {
            Some(q @ ('"' | '\'')) => {
                let close = rest[1..].iter().position(|c| c == q)? + 1;
                (rest[1..close].iter().collect::<String>(), close + 1)
            }
            _ => {
                let colon = (0..rest.len())
                    .find(|&i| rest[i] == ':' && matches!(rest.get(i + 1), None | Some(' ')))?;
                (
                    rest[..colon].iter().collect::<String>().trim_end().into(),
                    colon,
                )
            }
        };
        if rest.get(after) != Some(&':') {
            return None;
        }
        Some((key, col + after + 1))
    }

    fn child(&self, node: Node, seg: Seg<'_>) -> Option<Located> {
        let sibs = self.siblings(node);
        let next_of = |i: usize| sibs.get(i + 1).copied().unwrap_or(node.end);
        match seg {
            Seg::Key(k) => {
                // A sequence may sit at its key's indentation: its `-` lines are not entries.
                let entries: Vec<usize> = sibs
                    .iter()
                    .copied()
                    .filter(|&l| l == node.line || !self.starts_item(l, node.col))
                    .collect();
                entries.iter().enumerate().find_map(|(i, &line)| {
                    if line != node.line && self.starts_item(line, node.col) {
                        return None;
                    }
                    let (key, after) = self.key_at(line, node.col)?;
                    if key != k {
                        return None;
                    }
                    let end = entries.get(i + 1).copied().unwrap_or(node.end);
                    let value = self.value_node(line, after, node.col, end)?;
                    Some(Located {
                        key: pos(line, node.col),
                        node: value,
                    })
                })
            }
            Seg::Index(n) => {
                let items: Vec<(usize, usize)> = sibs
                    .iter()
                    .enumerate()
                    .filter(|(_, &l)| self.starts_item(l, node.col))
                    .map(|(i, &l)| (i, l))
                    .collect();
                let &(i, line) = items.get(n)?;
                let value = self.value_node(line, node.col + 1, node.col, next_of(i))?;
                Some(Located {
                    key: pos(line, node.col),
                    node: value,
                })
            }
        }
    }

    /// Locates the value at `path`.
    pub(crate) fn find(&self, path: &[Seg<'_>]) -> Option<Located> {
        let mut loc = Located {
            key: Position::new(1, 1),
            node: self.root()?,
        };
        for seg in path {
            loc = self.child(loc.node, *seg)?;
        }
        Some(loc)
    }

    /// A source map for the scalar at `loc`, if the text there decodes to exactly `expected`.
    pub(crate) fn scalar_map(&self, loc: &Located, expected: &str) -> Option<SourceMap> {
        let Node { line, col, end } = loc.node;
        let l = &self.lines[line];
        let mut chars = Vec::new();
        let mut positions = Vec::new();
        match l.get(col)? {
            '"' => {
                let mut i = col + 1;
                loop {
                    match *l.get(i)? {
                        '"' => break,
                        '\\' => {
                            let (c, len) = match *l.get(i + 1)? {
                                'n' => ('\n', 2),
                                't' => ('\t', 2),
                                '\\' => ('\\', 2),
                                '"' => ('"', 2),
                                '/' => ('/', 2),
                                '0' => ('\0', 2),
                                ' ' => (' ', 2),
                                'x' => (hex_char(l.get(i + 2..i + 4)?)?, 4),
                                'u' => (hex_char(l.get(i + 2..i + 6)?)?, 6),
                                _ => return None,
                            };
                            chars.push(c);
                            positions.push(pos(line, i));
                            i += len;
                        }
                        c => {
                            chars.push(c);
                            positions.push(pos(line, i));
                            i += 1;
                        }
                    }
                }
                positions.push(pos(line, i));
            }
            '\'' => {
                let mut i = col + 1;
                loop {
                    match *l.get(i)? {
                        '\'' if l.get(i + 1) == Some(&'\'') => {
                            chars.push('\'');
                            positions.push(pos(line, i));
                            i += 2;
                        }
                        '\'' => break,
                        c => {
                            chars.push(c);
                            positions.push(pos(line, i));
                            i += 1;
                        }
                    }
                }
                positions.push(pos(line, i));
            }
            '|' => {
                let header: String = l[col..].iter().collect();
                let keep = header.contains('+');
                let strip = header.contains('-');
                let first = self.next_content(line + 1, end)?;
                let ind = self.indent(first)?;
                let mut last_line = first;
                for bl in first..end {
                    let row = &self.lines[bl];
                    if row.iter().all(|c| *c == ' ') {
                        chars.push('\n');
                        positions.push(pos(bl, row.len()));
                        continue;
                    }
                    if self.indent(bl).is_some_and(|i| i < ind) {
                        break;
                    }
                    for (c, ch) in row.iter().enumerate().skip(ind) {
                        chars.push(*ch);
                        positions.push(pos(bl, c));
                    }
                    chars.push('\n');
                    positions.push(pos(bl, row.len()));
                    last_line = bl;
                }
                if !keep {
                    while chars.last() == Some(&'\n') {
                        chars.pop();
                        positions.pop();
                    }
                    if !strip {
                        chars.push('\n');
                        positions.push(pos(last_line, self.lines[last_line].len()));
                    }
                }
                positions.push(pos(last_line + 1, 1));
            }
            _ => {
                let mut stop = l.len();
                for i in col..l.len() {
                    if l[i] == '#' && i > col && l[i - 1] == ' ' {
                        stop = i;
                        break;
                    }
                }
                while stop > col && l[stop - 1] == ' ' {
                    stop -= 1;
                }
                for (i, ch) in l.iter().enumerate().take(stop).skip(col) {
                    chars.push(*ch);
                    positions.push(pos(line, i));
                }
                positions.push(pos(line, stop));
            }
        }
        let decoded: String = chars.into_iter().collect();
        (decoded == expected).then(|| SourceMap::from_positions(positions))
    }

    /// A source map for `expected` at `path`: exact when the scalar decodes to it, else every
    /// character mapped to the value's first position (or the file start if nothing is found).
    pub(crate) fn map_or_fallback(&self, path: &[Seg<'_>], expected: &str) -> SourceMap {
        match self.find(path) {
            Some(loc) => self
                .scalar_map(&loc, expected)
                .unwrap_or_else(|| constant_map(expected, loc.value_pos())),
            None => constant_map(expected, Position::new(1, 1)),
        }
    }

    /// Position of the key at `path` (or of the nearest ancestor found), for config errors.
    pub(crate) fn key_pos(&self, path: &[Seg<'_>]) -> Position {
        (0..=path.len())
            .rev()
            .find_map(|n| {
                if n == 0 {
                    return None;
                }
                self.find(&path[..n]).map(|l| l.key)
            })
            .unwrap_or(Position::new(1, 1))
    }
}

fn hex_char(digits: &[char]) -> Option<char> {
    let s: String = digits.iter().collect();
    char::from_u32(u32::from_str_radix(&s, 16).ok()?)
}

fn constant_map(text: &str, at: Position) -> SourceMap {
    SourceMap::from_positions(vec![at; text.chars().count() + 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# comment
type: publish
name: x
apps:
  - name: app
    publish_auth_check:
      enabled: true
      params:
        a: string(${app})   # note
        'b': \"md5_upper(\\x41)\"
      checks:
      - \"${url_params[k]} == 1\"
      -   ${params[a]} != 'q'
      - |
        ${params[b]}
          == 2
  - name: other
";

    fn map_of(path: &[Seg<'_>], expected: &str) -> Option<SourceMap> {
        let d = Doc::new(DOC);
        let loc = d.find(path)?;
        d.scalar_map(&loc, expected)
    }

    use Seg::{Index as I, Key as K};

    #[test]
    fn finds_scalars() {
        let base = [K("apps"), I(0), K("publish_auth_check")];
        let p = |extra: &[Seg<'static>]| [&base[..], extra].concat();
        let m = map_of(&p(&[K("params"), K("a")]), "string(${app})").unwrap();
        assert_eq!(m.pos(0), Position::new(9, 12));
        let m = map_of(&p(&[K("params"), K("b")]), "md5_upper(A)").unwrap();
        assert_eq!(m.pos(10), Position::new(10, 25));
        assert_eq!(m.pos(11), Position::new(10, 29));
        let m = map_of(&p(&[K("checks"), I(0)]), "${url_params[k]} == 1").unwrap();
        assert_eq!(m.pos(0), Position::new(12, 10));
        let m = map_of(&p(&[K("checks"), I(1)]), "${params[a]} != 'q'").unwrap();
        assert_eq!(m.pos(0), Position::new(13, 11));
        let m = map_of(&p(&[K("checks"), I(2)]), "${params[b]}\n  == 2\n").unwrap();
        assert_eq!(m.pos(0), Position::new(15, 9));
        assert_eq!(m.pos(15), Position::new(16, 11));
        assert!(map_of(&p(&[K("checks"), I(0)]), "other").is_none());
        let d = Doc::new(DOC);
        assert_eq!(
            d.key_pos(&[K("apps"), I(1), K("name")]),
            Position::new(17, 5)
        );
        assert_eq!(
            d.key_pos(&[K("apps"), I(1), K("nope")]),
            Position::new(17, 3)
        );
        assert_eq!(d.key_pos(&[K("name")]), Position::new(3, 1));
    }
}

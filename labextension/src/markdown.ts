/**
 * Model text is Markdown, never HTML: every `<` outside code becomes `&lt;`, so a reply with
 * `<img onerror=…>` or `<script>` shows those characters as text (JupyterLab's sanitizer, which
 * the untrusted render also applies, is the second line). Code is left as written: fenced
 * blocks, indented blocks and inline code spans show `<` literally anyway.
 *
 * One pass over the text, linear in its length.
 */

const FENCE = /^ {0,3}(`{3,}|~{3,})/;
const LIST_ITEM = /^ {0,3}([-+*]|\d{1,9}[.)])\s/;

export function escapeRawHTML(markdown: string): string {
  const lines = markdown.split('\n');
  const out: string[] = [];
  let fence = ''; // the open fence's marker run, '' outside a fenced block
  let prose: string[] = [];
  let previousBlank = true;
  let inList = false;
  let inIndentedCode = false;

  const flushProse = () => {
    if (prose.length) {
      out.push(escapeInline(prose.join('\n')));
      prose = [];
    }
  };

  for (const line of lines) {
    if (fence) {
      out.push(line);
      const close = line.match(FENCE);
      if (
        close &&
        close[1][0] === fence[0] &&
        close[1].length >= fence.length &&
        line.trim() === close[1]
      ) {
        fence = '';
      }
      continue;
    }
    const open = line.match(FENCE);
    if (
      open &&
      !(open[1][0] === '`' && line.slice(open[0].length).includes('`'))
    ) {
      flushProse();
      fence = open[1];
      out.push(line);
      previousBlank = false;
      inIndentedCode = false;
      continue;
    }
    const blank = line.trim() === '';
    const indented = /^( {4}|\t)/.test(line);
    if (!blank && !indented) {
      inList = LIST_ITEM.test(line) || (inList && !previousBlank);
    }
    // An indented block starts after a blank line outside a list and runs while indented.
    inIndentedCode =
      indented && !inList && (previousBlank || inIndentedCode) && !blank;
    if (inIndentedCode) {
      flushProse();
      out.push(line);
    } else {
      prose.push(line);
    }
    previousBlank = blank;
  }
  flushProse();
  return out.join('\n');
}

/** Escape `<` in prose, leaving inline code spans (a run of N backticks up to the next run of
 * exactly N backticks) as they are. Linear: each run is looked at a bounded number of times. */
function escapeInline(text: string): string {
  const runs: { start: number; length: number }[] = [];
  for (const match of text.matchAll(/`+/g)) {
    runs.push({ start: match.index ?? 0, length: match[0].length });
  }
  // for each run, the index of the next run of the same length (or -1)
  const next = new Array<number>(runs.length).fill(-1);
  const lastOfLength = new Map<number, number>();
  for (let k = runs.length - 1; k >= 0; k--) {
    next[k] = lastOfLength.get(runs[k].length) ?? -1;
    lastOfLength.set(runs[k].length, k);
  }
  let result = '';
  let position = 0;
  let k = 0;
  while (k < runs.length) {
    const closer = next[k];
    if (closer < 0) {
      k++; // unmatched backticks are literal
      continue;
    }
    const open = runs[k];
    const close = runs[closer];
    result += text.slice(position, open.start).replace(/</g, '&lt;');
    result += text.slice(open.start, close.start + close.length);
    position = close.start + close.length;
    k = closer + 1;
  }
  return result + text.slice(position).replace(/</g, '&lt;');
}

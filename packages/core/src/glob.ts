/**
 * Glob matching in linear time. A backtracking regex (what picomatch compiles to) takes time
 * exponential in the number of `*` on a key that almost matches: a 30-character include froze a
 * worker for ~50 s. Here a pattern compiles to a small NFA that is simulated over the key, one set of
 * states per character: O(key length x pattern length) whatever the pattern.
 *
 * Syntax (picomatch's with `dot: true`, minus extglobs): `*` any run without `/`, `?` one character
 * but `/`, `**` as a whole segment any number of segments, `[abc]` `[a-z]` `[^x]` classes (`[!x]`
 * negates too, as in POSIX), `{a,b}` alternatives (not nested), `\` escapes the next character.
 */

type Step = { test: (c: string) => boolean; loop: boolean; skipTo?: number };

export interface GlobMatcher {
  (key: string): boolean;
}

/** Most alternatives one pattern's braces may expand to. */
const MAX_ALTERNATIVES = 64;

export class GlobError extends Error {}

function expandBraces(pattern: string): string[] {
  const open = findUnescaped(pattern, '{');
  if (open < 0) return [pattern];
  const close = findUnescaped(pattern, '}', open);
  if (close < 0) throw new GlobError('unbalanced {');
  const inner = pattern.slice(open + 1, close);
  if (findUnescaped(inner, '{') >= 0) throw new GlobError('nested {} are not supported');
  const head = pattern.slice(0, open);
  const out: string[] = [];
  for (const tail of expandBraces(pattern.slice(close + 1)))
    for (const alt of inner.split(',')) {
      out.push(head + alt + tail);
      if (out.length > MAX_ALTERNATIVES) throw new GlobError(`{} expand to more than ${MAX_ALTERNATIVES} patterns`);
    }
  return out;
}

function findUnescaped(s: string, ch: string, from = 0): number {
  for (let i = from; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === ch) return i;
  }
  return -1;
}

function classTest(body: string): (c: string) => boolean {
  const negate = body.startsWith('!') || body.startsWith('^');
  const chars = negate ? body.slice(1) : body;
  const ranges: [string, string][] = [];
  for (let i = 0; i < chars.length; i++) {
    const a = chars[i] === '\\' ? chars[++i]! : chars[i]!;
    if (chars[i + 1] === '-' && i + 2 < chars.length) {
      const b = chars[i + 2] === '\\' ? chars[i + 3]! : chars[i + 2]!;
      i += chars[i + 2] === '\\' ? 3 : 2;
      ranges.push([a, b]);
    } else ranges.push([a, a]);
  }
  return (c) => c !== '/' && ranges.some(([lo, hi]) => c >= lo && c <= hi) !== negate;
}

function compileOne(pattern: string): Step[] {
  if (/[@!+*?]\(/.test(pattern)) throw new GlobError('extglobs such as *(…) are not supported');
  if (pattern.startsWith('!')) throw new GlobError('negated patterns go in exclude');
  const steps: Step[] = [];
  const any = () => true;
  const notSlash = (c: string) => c !== '/';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    const atSegmentStart = i === 0 || pattern[i - 1] === '/';
    if (c === '*' && pattern[i + 1] === '*' && atSegmentStart && (i + 2 === pattern.length || pattern[i + 2] === '/')) {
      if (i + 2 === pattern.length) {
        // Trailing `**` (or `dir/**`): anything below, including the directory itself.
        const slash = steps.at(-1);
        steps.push({ test: any, loop: true });
        if (slash && i > 0) slash.skipTo = steps.length;
        i += 1;
      } else {
        // `**/`: zero or more whole segments.
        const loop: Step = { test: any, loop: true };
        steps.push(loop, { test: (x) => x === '/', loop: false });
        loop.skipTo = steps.length;
        i += 2;
      }
    } else if (c === '*') {
      while (pattern[i + 1] === '*') i++;
      // A `*` that is a whole segment names a segment: at least one character (as picomatch).
      if (atSegmentStart && (i + 1 === pattern.length || pattern[i + 1] === '/')) steps.push({ test: notSlash, loop: false });
      steps.push({ test: notSlash, loop: true });
    } else if (c === '?') steps.push({ test: notSlash, loop: false });
    else if (c === '[') {
      const close = pattern.indexOf(']', i + 2);
      if (close < 0) throw new GlobError('unbalanced [');
      steps.push({ test: classTest(pattern.slice(i + 1, close)), loop: false });
      i = close;
    } else {
      const lit = c === '\\' ? pattern[++i] : c;
      if (lit === undefined) throw new GlobError('ends with a lone \\');
      steps.push({ test: (x) => x === lit, loop: false });
    }
  }
  return steps;
}

function simulate(steps: Step[], key: string): boolean {
  const n = steps.length;
  let cur = new Uint8Array(n + 1);
  let next = new Uint8Array(n + 1);
  // Epsilon closure: a loop may match nothing; `**/` and `/**` may be skipped as a whole.
  const close = (set: Uint8Array) => {
    for (let i = 0; i < n; i++) {
      if (!set[i]) continue;
      const s = steps[i]!;
      if (s.loop) set[i + 1] = 1;
      if (s.skipTo !== undefined) set[s.skipTo] = 1;
    }
  };
  cur[0] = 1;
  close(cur);
  for (const c of key) {
    next.fill(0);
    let alive = false;
    for (let i = 0; i < n; i++) {
      if (!cur[i]) continue;
      const s = steps[i]!;
      if (!s.test(c)) continue;
      next[s.loop ? i : i + 1] = 1;
      alive = true;
    }
    if (!alive) return false;
    close(next);
    [cur, next] = [next, cur];
  }
  return cur[n] === 1;
}

/** Compiles patterns into one matcher (true when any pattern matches); throws GlobError when a pattern is refused. */
export function compileGlobs(patterns: readonly string[]): GlobMatcher {
  const compiled = patterns.flatMap(expandBraces).map(compileOne);
  // A folder marker `dir/` matches as `dir` does (as picomatch).
  return (key) => compiled.some((steps) => simulate(steps, key.endsWith('/') ? key.slice(0, -1) : key));
}

/** Why a pattern is refused, or undefined when it compiles. */
export function globProblem(pattern: string): string | undefined {
  try {
    compileGlobs([pattern]);
    return undefined;
  } catch (err) {
    if (err instanceof GlobError) return err.message;
    throw err;
  }
}

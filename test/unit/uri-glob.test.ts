import picomatch from 'picomatch';
import { describe, expect, it } from 'vitest';
import { checkS3Uri, checkScope, compileGlobs, globProblem, inScope } from '@detq/core';

describe('canonical s3 URIs and segment scopes', () => {
  it('refuses traversal, empty segments, encoded traversal, backslashes, control characters and other schemes, saying which', () => {
    const refused: [string, RegExp][] = [
      ['s3://b/a/../c', /\. or \.\./],
      ['s3://b/./c', /\. or \.\./],
      ['s3://b/a/%2e%2e/c', /percent-encoded/],
      ['s3://b/a/%2E./c', /percent-encoded/],
      ['s3://b/a%2fb', /percent-encoded/],
      ['s3://b/a%5c..', /percent-encoded/],
      ['s3://b/a\\..\\c', /backslash/],
      ['s3://b/a//c', /empty path segments/],
      ['s3://b/a\u0007', /control/],
      ['s3://b/a\u009b31m', /control/],
      ['http://b/a', /only s3/],
      ['S3://b/a', /only s3/],
      ['s3://B_ad/a', /bucket/],
    ];
    for (const [uri, reason] of refused) {
      const r = checkS3Uri(uri);
      expect(r.ok, uri).toBe(false);
      if (!r.ok) expect(r.reason, uri).toMatch(reason);
    }
    expect(checkS3Uri('s3://b/dir/x.jpg')).toEqual({ ok: true, uri: { bucket: 'b', segments: ['dir', 'x.jpg'], prefix: false } });
    expect(checkS3Uri('s3://b/dir/')).toEqual({ ok: true, uri: { bucket: 'b', segments: ['dir'], prefix: true } });
    // Dots inside a name are fine.
    expect(checkS3Uri('s3://b/a..b/.hidden/x.tar.gz').ok).toBe(true);
  });

  it('scopes match whole segments, never string prefixes', () => {
    const scopes = ['s3://out/alice/*', 's3://models/m.onnx'];
    expect(inScope('s3://out/alice/run/', scopes)).toBe(true);
    expect(inScope('s3://out/alice/', scopes)).toBe(true);
    expect(inScope('s3://out/alice2/run/', scopes)).toBe(false);
    expect(inScope('s3://out/alice/../bob/', scopes)).toBe(false);
    expect(inScope('s3://out/', scopes)).toBe(false);
    expect(inScope('s3://models/m.onnx', scopes)).toBe(true);
    expect(inScope('s3://models/m.onnx.bak', scopes)).toBe(false);
    expect(inScope('s3://anything/x', ['s3://anything/*'])).toBe(true);
    expect(checkScope('s3://out/alice*')).toMatch(/only end a scope/);
    expect(checkScope('s3://out/alice/')).toMatch(/ends in \/\*/);
    expect(checkScope('s3://out/../x/*')).toMatch(/\.\./);
  });
});

describe('linear-time globs', () => {
  const keys = ['a.jpg', 'dir/a.jpg', 'dir/sub/b.PNG', '.hidden/c.jpg', 'x/y/z/d.jpeg', 'img[1].jpg', 'a-b_c.webp', 'dir/', 'dir'];
  const patterns = ['*.jpg', '**/*.jpg', 'dir/**', 'dir/*', '**', '*', '?.jpg', 'dir/**/b.*', '**/*.{jpg,jpeg}', '[a-c].jpg', '[^a]*.jpg', 'x/**/d.jpeg', '*/a.jpg', '**/sub/*'];

  it('agrees with picomatch ({dot: true}) on ordinary patterns', () => {
    for (const p of patterns) {
      const ours = compileGlobs([p]);
      const theirs = picomatch(p, { dot: true });
      for (const k of keys) expect(ours(k), `${p} on ${k}`).toBe(theirs(k));
    }
  });

  it('answers a pathological pattern on a long near-miss at once, and refuses what it cannot bound', () => {
    const match = compileGlobs([`${'*a'.repeat(40)}*b`]);
    expect(match('a'.repeat(1000))).toBe(false);
    expect(match(`${'a'.repeat(1000)}b`)).toBe(true);
    expect(globProblem('+(a|b).jpg')).toMatch(/extglob/);
    expect(globProblem('!x.jpg')).toMatch(/exclude/);
    expect(globProblem('{a,{b,c}}')).toMatch(/nested/);
    expect(globProblem('{a,b}{c,d}{e,f}{g,h}{i,j}{k,l}{m,n}')).toMatch(/more than 64/);
  });
});

/** Serialises rows as JSON Lines (one object a line, trailing newline). */
export function toJsonl(rows: readonly unknown[]): string {
  return rows.map((r) => `${JSON.stringify(r)}\n`).join('');
}

/** Parses JSON Lines; a bad line is reported with its source and line number. */
export function parseJsonl<T>(text: string, source: string, check?: (v: unknown) => v is T): T[] {
  const out: T[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new SyntaxError(`${source} line ${i + 1}: not valid JSON`);
    }
    if (check && !check(value)) throw new SyntaxError(`${source} line ${i + 1}: unexpected row shape`);
    out.push(value as T);
  }
  return out;
}

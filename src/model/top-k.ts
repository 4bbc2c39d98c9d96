/** The k largest values of row `row` of a row-major [rows × width] matrix, largest first (ties: lower index). */
export function topK(
  values: Float32Array,
  row: number,
  width: number,
  k: number,
): { label: number; probability: number }[] {
  const out: { label: number; probability: number }[] = [];
  const base = row * width;
  for (let i = 0; i < width; i++) {
    const p = values[base + i]!;
    if (out.length < k || p > out[out.length - 1]!.probability) {
      let j = Math.min(out.length, k - 1);
      if (out.length < k) out.push({ label: i, probability: p });
      while (j > 0 && out[j - 1]!.probability < p) {
        out[j] = out[j - 1]!;
        j--;
      }
      out[j] = { label: i, probability: p };
    }
  }
  return out;
}

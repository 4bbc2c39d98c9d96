// Reading many small members out of one tarball: neighbouring members are fetched with one
// ranged GET instead of one each. A shard's images are mostly close together in the tar (a
// split takes most of each class folder), so this cuts S3 requests by an order of magnitude
// for a little over-read.

export interface Member {
  offset: number;
  size: number;
}

export interface RangeGroup {
  /** Inclusive byte range covering every member of the group. */
  start: number;
  end: number;
  /** Indexes into the input array. */
  members: number[];
}

export interface CoalesceOptions {
  /** Largest gap of unwanted bytes worth reading to save a request. */
  maxGapBytes: number;
  /** Largest single range, to bound memory and keep GETs parallel. */
  maxSpanBytes: number;
}

export function coalesceRanges(members: readonly Member[], opts: CoalesceOptions): RangeGroup[] {
  const order = members.map((_, i) => i).sort((a, b) => members[a]!.offset - members[b]!.offset);
  const groups: RangeGroup[] = [];
  let current: RangeGroup | undefined;
  for (const i of order) {
    const { offset, size } = members[i]!;
    const end = offset + size - 1;
    if (
      current &&
      offset - current.end - 1 <= opts.maxGapBytes &&
      end - current.start + 1 <= opts.maxSpanBytes
    ) {
      current.end = Math.max(current.end, end);
      current.members.push(i);
    } else {
      current = { start: offset, end, members: [i] };
      groups.push(current);
    }
  }
  return groups;
}

// Everything that comes from metrics.json or training.json (class names, run ids, hyperparameters)
// is data, never markup: the `html` tag escapes every interpolated value unless it is already Html.

/** Markup that is already safe to insert as is (built by `html` or `rawHtml`). */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

type Interpolated = string | number | Html | readonly Html[] | undefined | null | false;

const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

function interpolate(value: Interpolated): string {
  if (value === undefined || value === null || value === false) return '';
  if (value instanceof Html) return value.value;
  if (Array.isArray(value)) return value.map((v: Html) => v.value).join('');
  return escapeHtml(String(value));
}

/** Template tag: literal parts are markup, interpolated values are escaped (attributes must be quoted). */
export function html(strings: TemplateStringsArray, ...values: Interpolated[]): Html {
  let out = strings[0]!;
  values.forEach((v, i) => {
    out += interpolate(v) + strings[i + 1]!;
  });
  return new Html(out);
}

/** Trusted markup produced by this module itself (CSS, the page script, SVG built from numbers). */
export function rawHtml(markup: string): Html {
  return new Html(markup);
}

/**
 * JSON to embed in <script type="application/json">: escaping "<" means no value (a class named
 * "</script>…") can close the element early; JSON.parse turns \u003c back into "<".
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

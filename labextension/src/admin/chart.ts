/**
 * A small SVG line chart: one line per user over shared time buckets. Plain SVG
 * keeps the extension free of a charting dependency for two simple charts.
 */
const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 560;
const HEIGHT = 180;
const PAD = { left: 64, right: 12, top: 12, bottom: 24 };

export interface ISeries {
  name: string;
  colour: string;
  values: Array<number | null>;
}

export interface IChartOptions {
  title: string;
  testId: string;
  times: number[]; // epoch ms of each bucket start
  series: ISeries[];
  format: (value: number) => string;
}

function el<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>,
  text?: string
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    node.setAttribute(name, String(value));
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** The n-th colour of the dashboard's categorical palette (CSS variables in admin.css). */
export function paletteColour(index: number): string {
  return `var(--jp-eda-admin-c${index % 6})`;
}

function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export function lineChart(options: IChartOptions): HTMLElement {
  const { times, series, format } = options;
  const figure = document.createElement('figure');
  figure.className = 'eda-AdminChart';
  figure.dataset.testid = options.testId;
  const caption = document.createElement('figcaption');
  caption.textContent = options.title;
  figure.append(caption);

  const svg = el('svg', {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: 'img',
    'aria-label': options.title,
    class: 'eda-AdminChart-svg'
  });
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const all = series.flatMap(s => s.values.filter((v): v is number => v !== null));
  const max = Math.max(1, ...all);
  const x = (i: number): number => PAD.left + (times.length > 1 ? (i / (times.length - 1)) * plotW : plotW / 2);
  const y = (v: number): number => PAD.top + plotH - (v / max) * plotH;

  // axes and labels: 0 and max on y, first and last bucket on x
  svg.append(
    el('line', { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: PAD.top + plotH, class: 'eda-AdminChart-axis' }),
    el('line', {
      x1: PAD.left,
      y1: PAD.top + plotH,
      x2: PAD.left + plotW,
      y2: PAD.top + plotH,
      class: 'eda-AdminChart-axis'
    }),
    el('text', { x: PAD.left - 6, y: PAD.top + 8, 'text-anchor': 'end', class: 'eda-AdminChart-label' }, format(max)),
    el('text', { x: PAD.left - 6, y: PAD.top + plotH, 'text-anchor': 'end', class: 'eda-AdminChart-label' }, format(0))
  );
  if (times.length) {
    svg.append(
      el('text', { x: PAD.left, y: HEIGHT - 6, class: 'eda-AdminChart-label' }, clock(times[0])),
      el(
        'text',
        { x: PAD.left + plotW, y: HEIGHT - 6, 'text-anchor': 'end', class: 'eda-AdminChart-label' },
        clock(times[times.length - 1])
      )
    );
  }

  for (const s of series) {
    // a gap (null) breaks the line: no sample is not the same as zero
    let d = '';
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    const path = el('path', { d, fill: 'none', 'stroke-width': 2, class: 'eda-AdminChart-line' });
    path.style.stroke = s.colour; // a style, not an attribute: attributes do not resolve var()
    path.dataset.user = s.name;
    const last = [...s.values].reverse().find(v => v !== null);
    path.append(el('title', {}, `${s.name}: latest ${last === undefined || last === null ? '-' : format(last)}`));
    svg.append(path);
    // a point with no neighbour draws no line: show it as a dot
    s.values.forEach((v, i) => {
      const before = i > 0 ? s.values[i - 1] : null;
      const after = i < s.values.length - 1 ? s.values[i + 1] : null;
      if (v !== null && before === null && after === null) {
        const dot = el('circle', { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 3, class: 'eda-AdminChart-dot' });
        dot.style.fill = s.colour;
        dot.dataset.user = s.name;
        svg.append(dot);
      }
    });
  }
  figure.append(svg);

  const legend = document.createElement('ul');
  legend.className = 'eda-AdminChart-legend';
  for (const s of series) {
    const item = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.className = 'eda-AdminChart-swatch';
    swatch.style.background = s.colour;
    item.append(swatch, s.name);
    legend.append(item);
  }
  if (!series.length) {
    const item = document.createElement('li');
    item.textContent = 'No activity in this period';
    legend.append(item);
  }
  figure.append(legend);
  return figure;
}

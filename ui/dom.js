// Building the DOM without markup: every value goes in as a text node, never as HTML, because
// job results, errors and names come from whoever submitted the job.

// An element `tag` with `attrs` (properties such as className, or "data-*"/"aria-*" attributes)
// and `children`: nodes, or anything else as its text. null and undefined children are skipped.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("data-") || name.startsWith("aria-") || name === "for") node.setAttribute(name, value);
    else node[name] = value;
  }
  append(node, children);
  return node;
}

// Appends `children` (nested arrays allowed) to `node`, strings as text.
export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Empties `node` and fills it with `children`.
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

// A table with a header row of `columns` and one row per item of `rows` (each an array of cells).
export function table(columns, rows, attrs = {}) {
  return el("table", attrs,
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", {}, c)))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c))))));
}

// An RFC 3339 time as the viewer's local time, "-" for none.
export function when(time) {
  return time ? new Date(time).toLocaleString() : "-";
}

// A job status as a coloured badge.
export function badge(status) {
  return el("span", { className: `badge status-${status}`, "data-status": status }, status);
}

// A box for an error from the API (or the network), `id` for the tests to find it.
export function error_box(error, id = "error") {
  return el("p", { className: "error", id, role: "alert" }, error_text(error));
}

export function error_text(error) {
  return error.code ? `${error.status} ${error.code}: ${error.message}` : String(error.message || error);
}

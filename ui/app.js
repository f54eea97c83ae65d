// The dashboard's entry: logs in with an API key (or finds the api in its open mode, where no
// key is needed), then draws the view the address's #fragment names into <main>:
//   #/overview  #/jobs?status=&type=  #/jobs/{id}  #/dead  #/keys  #/login
// Each view gets an AbortSignal that fires when the user moves on, which stops its polling
// and its event stream.
import { ApiError, api_key, get, set_api_key } from "./api.js";
import { el, error_box, replace } from "./dom.js";
import { render_overview } from "./overview.js";
import { render_jobs } from "./jobs.js";
import { render_job } from "./job.js";
import { render_dead } from "./dead.js";
import { render_keys } from "./keys.js";

const main = document.getElementById("main");
let current = null;  // the AbortController of the view on screen
let open_mode = false;  // the api answered without a key

const VIEWS = [
  [/^\/overview$/, "overview", () => render_overview],
  [/^\/jobs$/, "jobs", () => render_jobs],
  [/^\/jobs\/([^/]+)$/, "jobs", () => render_job],
  [/^\/dead$/, "dead", () => render_dead],
  [/^\/keys$/, "keys", () => render_keys],
];

function parse_hash() {
  const hash = location.hash.replace(/^#/, "") || "/overview";
  const [path, search = ""] = hash.split("?");
  return { path, params: new URLSearchParams(search) };
}

function show_chrome(logged_in) {
  document.getElementById("nav").hidden = !logged_in;
  document.getElementById("logout").hidden = !logged_in || open_mode;
  replace(document.getElementById("who"), logged_in ? (open_mode ? "open mode (no key needed)" : key_label()) : "");
}

// Which key is in use: an API key's id (sk_{id}_{secret}); the secret is never shown.
function key_label() {
  const id = /^sk_([0-9a-f]{16})_/.exec(api_key());
  return id ? `key ${id[1]}` : "admin key (SLUICE_ADMIN_KEY)";
}

// Sends the user to the login form, saying why (`error`: the api's answer to the key).
function to_login(error) {
  set_api_key("");
  show_login(error);
}

function show_login(error) {
  if (current) current.abort();
  current = null;
  show_chrome(false);
  const key = el("input", { id: "login-key", type: "password", name: "key", autocomplete: "off", required: true,
                            placeholder: "sk_... or the admin key", size: 60 });
  const form = el("form", { id: "login-form", className: "card narrow" },
    el("h1", {}, "Log in"),
    el("p", {}, "The dashboard calls the api with your API key. It stays in this tab only (sessionStorage)."),
    el("label", { for: "login-key" }, "API key"), key,
    el("button", { id: "login-submit", type: "submit" }, "Log in"),
    error ? error_box(error, "login-error") : null);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    set_api_key(key.value.trim());
    try {
      await get("/v1/queues");
    } catch (e) {
      to_login(e);
      return;
    }
    if (location.hash === "#/overview") route();
    else location.hash = "#/overview";  // route() runs on the hashchange
  });
  replace(main, form);
  key.focus();
}

async function route() {
  const { path, params } = parse_hash();
  if (path === "/login" || (!api_key() && !open_mode)) {
    show_login(null);
    return;
  }
  show_chrome(true);
  if (current) current.abort();
  current = new AbortController();
  const signal = current.signal;
  for (const [pattern, name, view] of VIEWS) {
    const match = pattern.exec(path);
    if (!match) continue;
    for (const link of document.querySelectorAll("#nav a")) link.classList.toggle("active", link.dataset.view === name);
    try {
      await view()(main, { params, id: match[1] ? decodeURIComponent(match[1]) : null }, signal);
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && e.status === 401) to_login(e);
      else replace(main, error_box(e));
    }
    return;
  }
  replace(main, el("p", { className: "error" }, "No such page."), el("a", { href: "#/overview" }, "Overview"));
}

// Whether the api serves this tab without a key (SLUICE_AUTH off).
async function probe_open_mode() {
  if (api_key()) return false;
  try {
    await get("/v1/queues");
    return true;
  } catch {
    return false;
  }
}

document.getElementById("logout").addEventListener("click", () => {
  set_api_key("");
  location.hash = "#/login";
});
// A view that meets a key the api no longer takes (revoked) sends the user back here.
addEventListener("sluice:unauthenticated", (event) => to_login(event.detail));
addEventListener("hashchange", route);
open_mode = await probe_open_mode();
route();

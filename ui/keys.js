// API keys (admin keys only: a member key sees the api's 403 here): every key without its secret
// (GET /v1/admin/keys), a form that makes one and shows it this once (POST), and revoke (DELETE).
import { del, get, post } from "./api.js";
import { el, error_box, replace, table, when } from "./dom.js";

function create_form(on_created) {
  const tenant = el("input", { id: "key-tenant", name: "tenant", required: true, value: "default", size: 16 });
  const role = el("select", { id: "key-role", name: "role" },
    el("option", { value: "member" }, "member"), el("option", { value: "admin" }, "admin"));
  const name = el("input", { id: "key-name", name: "name", required: true, maxLength: 128, size: 24,
                             placeholder: "what it is for" });
  const outcome = el("div", { id: "key-outcome" });
  const form = el("form", { id: "key-form", className: "card" },
    el("h2", {}, "New key"),
    el("div", { className: "row" },
       el("label", { for: "key-tenant" }, "Tenant"), tenant, el("label", { for: "key-role" }, "Role"), role,
       el("label", { for: "key-name" }, "Name"), name, el("button", { id: "key-create", type: "submit" }, "Create")),
    outcome);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const made = await post("/v1/admin/keys", { tenant: tenant.value.trim(), role: role.value, name: name.value });
      replace(outcome, el("div", { className: "ok" },
        el("p", {}, `Key ${made.id} for tenant ${made.tenant} (${made.role}). Copy it now: it is not shown again.`),
        el("code", { id: "key-secret", className: "secret" }, made.key)));
      on_created();
    } catch (e) {
      replace(outcome, error_box(e, "key-error"));
    }
  });
  return form;
}

export async function render_keys(main, _route, signal) {
  const list = el("div", { id: "keys-list" });
  const draw_list = async () => {
    try {
      const { keys } = await get("/v1/admin/keys");
      if (signal.aborted) return;
      const rows = keys.map((key) => {
        const revoke = el("button", { type: "button", className: "danger", "data-revoke": key.id }, "Revoke");
        revoke.addEventListener("click", async () => {
          try {
            await del(`/v1/admin/keys/${encodeURIComponent(key.id)}`);
            await draw_list();
          } catch (e) {
            replace(list, error_box(e, "keys-error"));
          }
        });
        return [el("span", { className: "mono" }, key.id), key.tenant, key.role, key.name, when(key.created_at),
                `${key.rate_limit.submits_per_s || "-"} / ${key.rate_limit.requests_per_s || "-"}`, revoke];
      });
      replace(list, table(["id", "tenant", "role", "name", "created", "submits/s / requests/s", ""], rows,
                          { id: "keys-table" }));
    } catch (e) {
      if (e.status === 401) throw e;
      replace(list, error_box(e, "keys-error"));
    }
  };
  replace(main, el("h1", {}, "API keys"), create_form(() => draw_list()),
          el("section", { className: "card" }, el("h2", {}, "Keys"), list));
  await draw_list();
}

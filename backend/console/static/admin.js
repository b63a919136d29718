/* Admin pages and the profile page: lists and forms over the JSON API. */
"use strict";

(() => {
  const { api, t, el, toast, settings, copy } = SOS;
  const $ = (id) => document.getElementById(id);

  /** Turn a form into a JSON body: empty fields are left out, checkbox groups become lists. */
  function formBody(form, lists = [], numbers = []) {
    const body = {};
    for (const name of lists) body[name] = [];
    for (const [name, value] of new FormData(form)) {
      const typed = numbers.includes(name) ? Number(value) : value;
      if (lists.includes(name)) body[name].push(typed);
      else if (value !== "") body[name] = typed;
    }
    return body;
  }

  /** Submit a form through the API; show the error in the form, or run done(result). */
  function apiForm(form, method, path, build, done) {
    const error = form.querySelector(".error");
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      error.hidden = true;
      try {
        const result = await api(method, path, build(form));
        form.reset();
        await done(result);
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
      }
    });
  }

  function showSecret(secret, title) {
    const box = $("secret");
    $("secret-value").textContent = secret;
    if (title) $("secret-title").textContent = title;
    box.hidden = false;
    box.scrollIntoView({ block: "center" });
    $("secret-copy").onclick = () => copy(secret);
    $("secret-done").onclick = () => { box.hidden = true; $("secret-value").textContent = ""; };
  }

  async function attempt(action, message) {
    try {
      await action();
      if (message) toast(message);
    } catch (error) {
      toast(error.message, "error");
    }
  }

  const button = (label, onclick, extra = {}) => el("button", { type: "button", class: "small", onclick, ...extra }, label);

  // ---- users --------------------------------------------------------------------------------
  async function loadUsers() {
    const { users } = await api("GET", "/users");
    $("users").replaceChildren(...users.map((u) => {
      const role = el("select", { "aria-label": t("Role of {name}", { name: u.username }) },
        el("option", { value: "supporter", selected: u.role === "supporter" }, t("Supporter")),
        el("option", { value: "admin", selected: u.role === "admin" }, t("Admin")));
      role.addEventListener("change", () => attempt(() => api("PATCH", `/users/${u.id}`, { role: role.value }), t("Saved")).then(loadUsers));
      const groups = el("details", {}, el("summary", {}, u.groups.map((g) => g.name).join(", ") || t("none")),
        ...settings.groups.map((g) => {
          const box = el("input", { type: "checkbox", checked: u.groups.some((x) => x.id === g.id) });
          box.addEventListener("change", () => attempt(
            () => api(box.checked ? "PUT" : "DELETE", `/groups/${g.id}/members/${u.id}`), t("Saved")).then(loadUsers));
          return el("label", { class: "check" }, box, " ", g.name);
        }));
      const reset = button(t("Reset password"), () => {
        const password = prompt(t("New password for {name} (at least 8 characters):", { name: u.username }));
        if (password) attempt(() => api("PATCH", `/users/${u.id}`, { password }), t("Password changed"));
      });
      const toggle = button(u.active ? t("Deactivate") : t("Reactivate"), () => attempt(
        () => api("PATCH", `/users/${u.id}`, { active: !u.active }), t("Saved")).then(loadUsers));
      return el("tr", { class: u.active ? null : "inactive" },
        el("td", {}, u.username), el("td", {}, u.display_name), el("td", {}, role), el("td", {}, groups),
        el("td", {}, u.active ? t(u.availability === "online" ? "Online" : u.availability === "away" ? "Away" : "Offline") : t("Deactivated")),
        el("td", {}, reset, " ", toggle));
    }));
  }

  // ---- groups -------------------------------------------------------------------------------
  const POLICIES = { none: "Nobody: the whole group sees it", default_user: "Default user", round_robin: "Round robin", least_active: "Fewest open cases" };

  /** The group's assignment: policy, filters and escalation, saved together. */
  function routingEditor(g, members) {
    const r = g.routing;
    const number = (name, value, label, min, max) => el("label", {}, t(label),
      el("input", { type: "number", name, min, max, value: value ?? "", placeholder: t("none") }));
    const check = (name, value, label) => el("label", { class: "check" },
      el("input", { type: "checkbox", name, checked: !!value }), " ", t(label));
    const form = el("form", { class: "routing" },
      el("label", {}, t("Policy"), el("select", { name: "policy" },
        ...Object.entries(POLICIES).map(([value, label]) => el("option", { value, selected: r.policy === value }, t(label))))),
      el("label", {}, t("Default user"), el("select", { name: "default_user_id" },
        el("option", { value: "" }, t("Nobody")),
        ...members.map((u) => el("option", { value: u.id, selected: r.default_user_id === u.id }, u.display_name)))),
      check("only_available", r.only_available, "Only experts who are available"),
      number("available_within_minutes", r.available_within_minutes, "Active within (minutes)", 1, 1440),
      check("use_schedules", r.use_schedules, "Only experts within their working hours"),
      number("max_open_cases", r.max_open_cases, "At most this many open cases each", 1, 10000),
      number("escalate_after_minutes", r.escalate_after_minutes, "Reassign when the assignee has not connected after (minutes)", 1, 10080),
      el("p", { class: "error", role: "alert", hidden: true }),
      el("button", { type: "submit", class: "small primary" }, t("Save")));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const f = form.elements;
      const optional = (input) => (input.value === "" ? null : Number(input.value));
      const routing = {
        policy: f.policy.value,
        default_user_id: optional(f.default_user_id),
        only_available: f.only_available.checked,
        available_within_minutes: Number(f.available_within_minutes.value || 15),
        use_schedules: f.use_schedules.checked,
        max_open_cases: optional(f.max_open_cases),
        escalate_after_minutes: optional(f.escalate_after_minutes),
      };
      const error = form.querySelector(".error");
      try {
        await api("PATCH", `/groups/${g.id}`, { routing });
        toast(t("Saved"));
        await loadGroups();
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
      }
    });
    return el("details", {}, el("summary", {}, t(POLICIES[r.policy] || r.policy)), form);
  }

  async function loadGroups() {
    const [{ groups }, { users }] = await Promise.all([api("GET", "/groups"), api("GET", "/users")]);
    $("groups").replaceChildren(...groups.map((g) => {
      const members = users.filter((u) => u.groups.some((x) => x.id === g.id)).map((u) => u.display_name);
      const policy = routingEditor(g, users.filter((u) => u.active && (u.role === "admin" || u.groups.some((x) => x.id === g.id))));
      const rename = button(t("Rename"), () => {
        const name = prompt(t("New name for {name}:", { name: g.name }), g.name);
        if (name) attempt(() => api("PATCH", `/groups/${g.id}`, { name }), t("Saved")).then(loadGroups);
      });
      const remove = button(t("Delete"), () => {
        if (confirm(t("Delete the group {name}?", { name: g.name }))) attempt(() => api("DELETE", `/groups/${g.id}`), t("Deleted")).then(loadGroups);
      }, { class: "small danger" });
      return el("tr", {}, el("td", {}, g.name), el("td", {}, g.description || ""), el("td", {}, members.join(", ") || "–"),
        el("td", {}, policy), el("td", {}, rename, " ", remove));
    }));
  }

  // ---- deployments --------------------------------------------------------------------------
  /** Topics the agent offers the customer, each routed to a group: one "name → group" a line. */
  function topicsEditor(d) {
    const rows = el("div", { class: "topics" });
    const addRow = (topic = { name: "", group_id: d.group.id }) => {
      const name = el("input", { value: topic.name, maxlength: 100, "aria-label": t("Topic"), placeholder: t("e.g. Printer") });
      const group = el("select", { "aria-label": t("Group") },
        ...settings.groups.map((g) => el("option", { value: g.id, selected: g.id === topic.group_id }, g.name)));
      const remove = button("×", () => row.remove(), { "aria-label": t("Remove") });
      const row = el("div", { class: "topic" }, name, group, remove);
      rows.append(row);
    };
    d.topics.forEach((topic) => addRow(topic));
    const error = el("p", { class: "error", role: "alert", hidden: true });
    const save = button(t("Save"), async () => {
      const topics = [...rows.children].map((row) => ({
        name: row.querySelector("input").value.trim(),
        group_id: Number(row.querySelector("select").value),
      })).filter((topic) => topic.name);
      try {
        await api("PATCH", `/deployments/${d.id}`, { topics });
        toast(t("Saved"));
        await loadDeployments();
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
      }
    }, { class: "small primary" });
    const summary = d.topics.length ? d.topics.map((x) => x.name).join(", ") : t("none");
    return el("details", {}, el("summary", {}, t("Topics: {list}", { list: summary })),
      rows, button(t("Add a topic"), () => addRow()), " ", save, error);
  }

  async function loadDeployments() {
    const { deployments } = await api("GET", "/deployments");
    $("deployments").replaceChildren(...deployments.map((d) => {
      const assignee = el("select", { "aria-label": t("Default assignee of {name}", { name: d.name }) },
        el("option", { value: "" }, t("Nobody")),
        ...settings.users.map((u) => el("option", { value: u.id, selected: d.default_assignee?.id === u.id }, u.display_name)));
      assignee.addEventListener("change", () => attempt(
        () => api("PATCH", `/deployments/${d.id}`, { default_assignee_id: assignee.value ? Number(assignee.value) : null }), t("Saved")).then(loadDeployments));
      const fields = el("div", {}, ...["name", "email", "description"].map((field) => {
        const box = el("input", { type: "checkbox", checked: d.customer_fields.includes(field) });
        box.addEventListener("change", () => {
          const chosen = [...fields.querySelectorAll("input")].filter((b) => b.checked).map((b) => b.value);
          attempt(() => api("PATCH", `/deployments/${d.id}`, { customer_fields: chosen }), t("Saved"));
        });
        box.value = field;
        return el("label", { class: "check" }, box, " ", t({ name: "Name", email: "E-mail", description: "Problem" }[field]));
      }));
      const topics = topicsEditor(d);
      const rotate = button(t("Rotate key"), async () => {
        if (!confirm(t("Replace the key of {name}? Agents built with the old key stop working.", { name: d.name }))) return;
        attempt(async () => {
          const result = await api("POST", `/deployments/${d.id}/rotate-key`);
          showSecret(result.key, t("New key for {name}", { name: d.name }));
          await loadDeployments();
        });
      });
      const toggle = button(d.active ? t("Deactivate") : t("Reactivate"), () => attempt(
        () => api("PATCH", `/deployments/${d.id}`, { active: !d.active }), t("Saved")).then(loadDeployments));
      return el("tr", { class: d.active ? null : "inactive" },
        el("td", {}, d.name), el("td", {}, d.group.name), el("td", {}, assignee), el("td", {}, fields, topics),
        el("td", {}, el("code", {}, `${d.key_hint}…`)), el("td", {}, rotate, " ", toggle));
    }));
  }

  // ---- profile ------------------------------------------------------------------------------
  async function loadTokens() {
    const { tokens } = await api("GET", "/tokens");
    $("tokens").replaceChildren(...tokens.map((k) => el("li", {},
      el("b", {}, k.name), " ", el("code", {}, `${k.hint}…`), " ",
      el("span", { class: "muted" }, k.last_used_at ? t("last used {when}", { when: SOS.when(k.last_used_at) }) : t("never used")), " ",
      button(t("Delete"), () => attempt(() => api("DELETE", `/tokens/${k.id}`), t("Deleted")).then(loadTokens), { class: "small danger" }))));
    if (!tokens.length) $("tokens").append(el("li", { class: "muted" }, t("No tokens yet.")));
  }

  if ($("users")) {
    apiForm($("new-user"), "POST", "/users", (f) => formBody(f, ["group_ids"], ["group_ids"]), async (u) => {
      toast(t("{name} added", { name: u.username }));
      await loadUsers();
    });
    loadUsers().catch((e) => toast(e.message, "error"));
  }
  if ($("groups")) {
    apiForm($("new-group"), "POST", "/groups", (f) => formBody(f), async () => { toast(t("Saved")); await loadGroups(); });
    loadGroups().catch((e) => toast(e.message, "error"));
  }
  if ($("deployments")) {
    apiForm($("new-deployment"), "POST", "/deployments", (f) => formBody(f, ["customer_fields"], ["group_id", "default_assignee_id"]), async (result) => {
      showSecret(result.key, t("Key for {name}", { name: result.deployment.name }));
      await loadDeployments();
    });
    loadDeployments().catch((e) => toast(e.message, "error"));
  }
  if ($("tokens")) {
    apiForm($("new-token"), "POST", "/tokens", (f) => formBody(f), async (result) => {
      showSecret(result.token, t("Your new token “{name}”", { name: result.name }));
      await loadTokens();
    });
    apiForm($("password"), "PATCH", "/me", (f) => formBody(f), async () => toast(t("Password changed")));
    loadTokens().catch((e) => toast(e.message, "error"));
  }
})();

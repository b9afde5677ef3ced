// Shared by both pages: the server's health line, the model picker, one-line errors.
"use strict";

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch (e) { /* not JSON */ }
  return `${response.status} ${response.statusText}`;
}

async function loadHealth(select) {
  const note = document.getElementById("health");
  try {
    const response = await fetch("/api/health");
    if (!response.ok) throw new Error(await errorText(response));
    const health = await response.json();
    note.textContent = `${health.models.length} model(s) · queue ${health.queue.running} running, ${health.queue.queued} waiting`;
    if (select) {
      select.replaceChildren(...health.model_info.map(m => {
        const option = document.createElement("option");
        option.value = m.name; option.textContent = m.name; option.title = m.description;
        return option;
      }));
    }
    return health;
  } catch (e) {
    note.textContent = "server unreachable: " + e.message;
    return null;
  }
}

async function sampleFile(name, type) {
  const response = await fetch("/api/samples/" + name);
  if (!response.ok) throw new Error(await errorText(response));
  return new File([await response.blob()], name, {type});
}

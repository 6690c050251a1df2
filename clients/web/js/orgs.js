// Organisations by id (GET /v1/organisations), loaded once per page load.
import { get } from './api.js';

let cache = null;

export async function organisations() {
  if (cache) return cache;
  const all = [];
  let cursor = null;
  do {
    const q = cursor ? `?limit=500&cursor=${encodeURIComponent(cursor)}` : '?limit=500';
    const page = await get(`/v1/organisations${q}`);
    all.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  cache = all;
  return all;
}

export async function orgName(id) {
  if (!id) return '';
  const all = await organisations();
  return all.find((o) => o.id === id)?.name || '';
}

export function orgNameSync(all, id) {
  return all.find((o) => o.id === id)?.name || '';
}

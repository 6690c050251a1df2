// Every text the UI asks for exists in both catalogues (da.json, en.json),
// and both hold the same keys. Runs without a browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './kip.js';

const web = path.join(ROOT, 'clients', 'web');
const cat = (l) => JSON.parse(readFileSync(path.join(web, 'i18n', `${l}.json`), 'utf8'));

function sources(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory()
    ? sources(path.join(dir, e.name)) : e.name.endsWith('.js') ? [path.join(dir, e.name)] : []));
}

test('both catalogues have the same keys', () => {
  assert.deepEqual(Object.keys(cat('en')).sort(), Object.keys(cat('da')).sort());
});

test('every key the UI uses is in the catalogues', async () => {
  const used = new Set();
  for (const f of sources(path.join(web, 'js'))) {
    const src = readFileSync(f, 'utf8');
    for (const m of src.matchAll(/\bt\('([a-z_]+\.[a-z0-9_]+)'/g)) used.add(m[1]);
    // keys named in arrays and passed to t(k)
    for (const m of src.matchAll(/'((?:plans|participants|mplan|history|accesslog|mm|mymeetings|tasks|nav)\.[a-z0-9_]+)'/g)) used.add(m[1]);
  }
  const labels = readFileSync(path.join(web, 'js', 'labels.js'), 'utf8');
  const list = (name) => JSON.parse(labels.match(new RegExp(`${name} = (\\[[^\\]]*\\])`))[1].replace(/'/g, '"'));
  for (const a of [...list('AREAS'), 'other']) used.add(`area.${a}`);
  for (const r of [...list('ROLES'), 'citizen']) used.add(`role.${r}`);
  for (const m of list('MODES')) used.add(`mode.${m}`);
  for (const p of list('PLACES')) used.add(`place.${p}`);
  for (const s of list('PLAN_STATUSES')) used.add(`plan_status.${s}`);
  for (const s of list('ACTION_STATUSES')) used.add(`action_status.${s}`);
  for (const s of ['planned', 'held', 'cancelled']) used.add(`meeting_status.${s}`);
  for (const s of ['unchanged', 'in_progress', 'done', 'cancelled']) used.add(`mm.fu_${s}`);
  for (const s of ['in_progress', 'done', 'open']) { used.add(`tasks.to_${s}`); used.add(`tasks.to_${s}_named`); }
  for (const l of ['da', 'en']) {
    const c = cat(l);
    const missing = [...used].filter((k) => !(k in c)).sort();
    assert.deepEqual(missing, [], `${l}.json lacks keys`);
  }
});

// Helpers for the browser tests: a real kipd (launch.py), the API as admin
// and as people, and a Chromium from Debian driven by playwright-core.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '..', '..');
export const SHOTS = path.join(ROOT, 'docs', 'ui');

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--lang=da-DK'];

// Starts PostgreSQL + kipd; resolves to {url, adminToken, secret(s), stop()}.
export function startKipd() {
  return new Promise((resolve, reject) => {
    const proc = spawn('/usr/bin/python3', [path.join(here, 'launch.py')], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, KIPD_BIN: process.env.KIPD_BIN || path.join(ROOT, 'build', 'daemon', 'kipd') },
    });
    const rl = createInterface({ input: proc.stdout });
    let done = false;
    const exited = new Promise((r) => proc.on('exit', (code) => r(code)));
    rl.once('line', (line) => {
      done = true;
      const info = JSON.parse(line);
      resolve({
        url: info.url,
        adminToken: info.admin_token,
        secret: (s) => proc.stdin.write(`${s}\n`),
        async stop() {
          proc.stdin.end();
          const code = await exited;
          if (code !== 0) throw new Error(`launch.py ended with ${code} (kipd exit code or a secret in its log)`);
        },
      });
    });
    proc.on('exit', (code) => { if (!done) reject(new Error(`launch.py exited ${code} before kipd answered`)); });
  });
}

export async function apiCall(base, token, method, p, body) {
  const res = await fetch(base + p, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new Error(`${method} ${p} → ${res.status} ${text}`);
  return data;
}

export async function launchBrowser() {
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: CHROMIUM_ARGS, headless: true,
    env: { ...process.env, LANGUAGE: 'da', LANG: 'da_DK.UTF-8' } });
}

// A page that records console errors, page errors and failed requests.
export async function newPage(browser, base, { width = 1366, height = 768 } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, baseURL: base, locale: 'da-DK', timezoneId: 'Europe/Copenhagen' });
  context.setDefaultTimeout(10000);
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (m) => { if (m.type() === 'error') page.problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  return page;
}

export function shotPath(name) {
  mkdirSync(SHOTS, { recursive: true });
  return path.join(SHOTS, `${name}.png`);
}

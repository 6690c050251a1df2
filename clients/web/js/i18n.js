// The text catalogues: one flat JSON file per language (i18n/da.json,
// i18n/en.json). Danish is the default; the choice is remembered per browser.

const LANGS = ['da', 'en'];
const KEY = 'kip.lang';
let lang = 'da';
let cat = {};
let fallback = {};

export async function loadLanguage(wanted) {
  lang = LANGS.includes(wanted) ? wanted : (LANGS.includes(localStorage.getItem(KEY)) ? localStorage.getItem(KEY) : 'da');
  const get = async (l) => {
    const res = await fetch(new URL(`../i18n/${l}.json`, import.meta.url));
    return res.json();
  };
  cat = await get(lang);
  fallback = lang === 'da' ? cat : await get('da');
  document.documentElement.lang = lang;
  return lang;
}

export function setLanguage(l) {
  localStorage.setItem(KEY, l);
}

export function currentLang() {
  return lang;
}

export function has(key) {
  return Object.prototype.hasOwnProperty.call(cat, key) || Object.prototype.hasOwnProperty.call(fallback, key);
}

// t('plans.count', {n: 3}) → catalogue text with {n} replaced.
export function t(key, vars) {
  let s = cat[key] ?? fallback[key];
  if (s === undefined) {
    console.warn(`i18n: missing key ${key}`);
    s = key;
  }
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] ?? m));
  return s;
}

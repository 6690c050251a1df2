// Labels for the API's enums, from the catalogue.
import { t } from './i18n.js';

export const AREAS = ['substances', 'somatic_health', 'mental_health', 'housing', 'finances',
  'employment', 'crime', 'family_children', 'network'];
export const ROLES = ['social_nurse', 'caseworker', 'jobcenter_caseworker', 'support_contact_person',
  'general_practitioner', 'addiction_counsellor', 'psychiatry', 'municipal_authority', 'relative', 'other'];
export const MODES = ['in_person', 'phone', 'video'];
export const PLACES = ['hospital', 'citizen_home', 'municipality', 'general_practice', 'virtual', 'other'];
export const PLAN_STATUSES = ['draft', 'awaiting_consent', 'active', 'closed'];
export const ACTION_STATUSES = ['open', 'in_progress', 'done', 'cancelled'];

export const label = (kind, v) => (v === null || v === undefined ? '' : t(`${kind}.${v}`));

export function statusBadge(kind, v) {
  const span = document.createElement('span');
  span.className = `badge badge-${kind}-${v}`;
  span.textContent = label(kind, v);
  return span;
}

export function roleForSector(sector) {
  return {
    region_hospital: 'social_nurse', region_psychiatry: 'psychiatry', municipality_jobcenter: 'jobcenter_caseworker',
    municipality_social: 'caseworker', municipality_addiction: 'addiction_counsellor',
    general_practice: 'general_practitioner',
  }[sector] || 'other';
}

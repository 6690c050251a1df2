// Meeting-mode drafts in localStorage, per signed-in user and meeting, so a
// reload or a lost connection loses nothing. A draft holds what was typed
// and participant ids, never a CPR number. All of a user's drafts are wiped
// at sign-out (and any other user's drafts found at sign-in).
const PREFIX = 'kip.draft.';

const key = (userId, meetingId) => `${PREFIX}${userId}.${meetingId}`;

export function loadDraft(userId, meetingId) {
  try {
    const s = localStorage.getItem(key(userId, meetingId));
    return s ? JSON.parse(s) : null;
  } catch (e) {
    return null;
  }
}

export function saveDraft(userId, meetingId, draft) {
  try {
    localStorage.setItem(key(userId, meetingId), JSON.stringify({ ...draft, saved_at: new Date().toISOString() }));
    return true;
  } catch (e) {
    return false;
  }
}

export function deleteDraft(userId, meetingId) {
  localStorage.removeItem(key(userId, meetingId));
}

// Wipes the drafts of userId, or with keepUserId every draft of anyone else.
export function wipeDrafts(userId, { keepUserId } = {}) {
  for (let i = localStorage.length - 1; i >= 0; i--) {
    const k = localStorage.key(i);
    if (!k || !k.startsWith(PREFIX)) continue;
    const owner = k.slice(PREFIX.length).split('.')[0];
    if (keepUserId ? owner !== keepUserId : owner === userId) localStorage.removeItem(k);
  }
}

// Shared state of the page: the signed-in user (from the session) and a few
// functions the screens call back into. Nothing here is persisted.
export const state = {
  user: null,         // {id, display_name, organisation_id, roles, ...}
  afterLogin: null,   // the path to return to after signing in
  navigate: null,
  signOut: null,
  setTitle: null,
};

export function isCoordinator() {
  return !!state.user && (state.user.roles || []).includes('coordinator');
}

// What the signed-in session may do. The session object is the contract's
// Session: {user: {username, email, admin}, workspaces: [{name, role}],
// csrfToken, expiresAt, loginMethod}.

/**
 * isAdmin: the session may use the admin pages and the platform-wide routes
 * (workspaces, API keys, users): an admin user, or a session opened with an
 * Owner API token.
 */
export function isAdmin(s) {
  return !!s?.user?.admin || s?.loginMethod === 'api-token';
}

/** roleIn is the session's role in workspace ws: admins act as Owners everywhere. */
export function roleIn(s, ws) {
  if (isAdmin(s)) return 'Owner';
  const w = (s?.workspaces || []).find((x) => x.name === ws);
  return w?.role || '';
}

/** canWrite: the session may create and change GPRs in ws. */
export function canWrite(s, ws) {
  return ['Owner', 'Editor'].includes(roleIn(s, ws));
}

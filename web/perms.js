// Role names and their labels. What each role may do is not here: the server sends the
// caller's permissions with the session (GET /api/session, from src/role.c's table).

export const ROLES = [
  { value: 'admin', label: 'Admin' },
  { value: 'technical', label: 'Technical Team' },
  { value: 'analytics', label: 'Analytics' },
  { value: 'marketing', label: 'Marketing' },
];

export function roleLabel(role) {
  const r = ROLES.find((x) => x.value === role);
  return r ? r.label : role;
}

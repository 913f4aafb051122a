// The permission matrix as the server has it (src/role.c, perm_table), so the panel hides
// or disables what a role may not do. The server enforces the same table regardless.

export const ROLES = [
  { value: 'admin', label: 'Admin' },
  { value: 'technical', label: 'Technical Team' },
  { value: 'analytics', label: 'Analytics' },
  { value: 'marketing', label: 'Marketing' },
];

const ALL = ['admin', 'technical', 'analytics', 'marketing'];

const PERMS = {
  read: ALL,
  'sender.add': ALL,
  'sender_auth.toggle': ['admin', 'technical', 'analytics'],
  'sender.remove': ['admin', 'technical', 'analytics'],
  'sender.verify': ['admin'],
  'domain.manage': ['admin', 'technical'],
  'user.manage': ['admin'],
  'key.manage': ['admin', 'technical'],
};

export function can(role, perm) {
  return (PERMS[perm] || []).includes(role);
}

export function roleLabel(role) {
  const r = ROLES.find((x) => x.value === role);
  return r ? r.label : role;
}

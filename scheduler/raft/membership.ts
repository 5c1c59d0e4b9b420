// Membership changes, one server at a time (thesis §4.1): what a change makes of a membership,
// or why it cannot be made. Any majority of the membership before and any majority after
// share a voter, so two leaders cannot be elected across a change.

import type { Membership } from './types.ts';

export type MembershipChange =
  | { type: 'add-learner'; id: string }
  | { type: 'promote'; id: string }
  | { type: 'remove'; id: string };

/** The membership after `change`, or a sentence saying why it is not a valid change. */
export function applyChange(m: Membership, change: MembershipChange): Membership | string {
  const { voters, learners } = m;
  const id = change.id;
  switch (change.type) {
    case 'add-learner':
      if (voters.includes(id) || learners.includes(id)) return `${id} is already a member`;
      return { voters: [...voters], learners: [...learners, id] };
    case 'promote':
      if (!learners.includes(id)) return `${id} is not a learner`;
      return { voters: [...voters, id], learners: learners.filter((x) => x !== id) };
    case 'remove':
      if (!voters.includes(id) && !learners.includes(id)) return `${id} is not a member`;
      if (voters.length === 1 && voters[0] === id) return 'the last voter cannot be removed';
      return { voters: voters.filter((x) => x !== id), learners: learners.filter((x) => x !== id) };
  }
}

import { describe, expect, it } from 'vitest';
import { labelOwner, ownerConflict, ownerLabels } from '../../controller/providers/libpod.js';

describe('owner labels of Podman networks and volumes', () => {
  it('round trip: the labels codeb writes name the owner it reads', () => {
    expect(labelOwner(ownerLabels('shop/staging'))).toBe('shop/staging');
    expect(labelOwner({ 'codeb.project': 'shop' })).toBeNull(); // not marked managed: not codeb's
    expect(labelOwner(undefined)).toBeNull();
  });
  it('an object another deployment (or nobody) owns is a conflict naming the owner; its own or an unasked one is not', () => {
    expect(ownerConflict('volume', 'v', 'other/production', 'shop/production')).toBe('Podman volume v exists but belongs to other/production; codeb does not take it over');
    expect(ownerConflict('network', 'n', null, 'shop/production')).toMatch(/belongs to something that is not codeb/);
    expect(ownerConflict('network', 'n', 'shop/production', 'shop/production')).toBeUndefined();
    expect(ownerConflict('volume', 'v', null, undefined)).toBeUndefined();
  });
});

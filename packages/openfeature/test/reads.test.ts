import test from 'ava'
import { INSTANCE_KEYS, instanceReads } from '../src/reads.js'

test('instanceReads: the instance facts a rule may read, all of them when it reads the context in a way not analysed', (t) => {
  const cases: Array<[unknown, Record<string, unknown> | undefined, readonly string[]]> = [
    [{ if: [{ ends_with: [{ var: 'email' }, '@example.com'] }, 'on', 'off'] }, undefined, []],
    [{ if: [{ '==': [{ var: 'zone' }, 'eu-1'] }, 'on', 'off'] }, undefined, ['zone']],
    [{ if: [{ '==': [{ var: ['metadata.tier', 'free'] }, 'gold'] }, 'on', 'off'] }, undefined, ['metadata']],
    [
      {
        fractional: [
          ['on', 1],
          ['off', 9],
        ],
      },
      undefined,
      ['targetingKey'],
    ],
    [{ fractional: ['literal', ['on', 1], ['off', 9]] }, undefined, []],
    [
      { fractional: [{ cat: [{ var: '$flagd.flagKey' }, { var: 'service' }] }, ['on', 1]] },
      undefined,
      ['service', 'targetingKey'],
    ],
    [{ sem_ver: [{ var: 'version' }, '>=', '1.2.0'] }, undefined, ['version']],
    [{ if: [{ $ref: 'inZone' }, 'on', 'off'] }, { inZone: { '==': [{ var: 'zone' }, 'eu-1'] } }, ['zone']],
    // not analysed: every fact, as before the analysis
    [{ if: [{ $ref: 'missing' }, 'on', 'off'] }, {}, INSTANCE_KEYS],
    [{ if: [{ var: '' }, 'on', 'off'] }, undefined, INSTANCE_KEYS],
    [{ if: [{ var: { cat: ['zo', 'ne'] } }, 'on', 'off'] }, undefined, INSTANCE_KEYS],
    [{ if: [{ missing: ['zone'] }, 'off', 'on'] }, undefined, INSTANCE_KEYS],
    [{ if: [{ val: 'zone' }, 'on', 'off'] }, undefined, INSTANCE_KEYS],
    [{ map: [{ var: 'tags' }, { var: '../zone' }] }, undefined, INSTANCE_KEYS],
  ]
  for (const [rule, evaluators, expected] of cases)
    t.deepEqual(instanceReads(rule, evaluators), [...expected], JSON.stringify(rule))
})

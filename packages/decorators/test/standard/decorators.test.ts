import test from 'ava'
import { decoratorCases } from '../cases.js'
import * as fixtures from './fixtures.js'

decoratorCases(test, fixtures, 'standard')

// The e2e suite's entry in its durable-object run: the deployed entry (build/entry.mjs, every
// handler as deployed) with the tenants' object class given the test door of object_door.mjs.
import { TenantStore as Deployed } from "../../build/entry.mjs";
import { withDoor } from "./object_door.mjs";

export { default } from "../../build/entry.mjs";

export const TenantStore = withDoor(Deployed);

-- A database as the e2rnas-sweeps store of commit 0f55978 wrote it: the last store before the
-- web service (sweeps without job_id, run_dir, progress and message). Upgraded by
-- tests/service/results/test_migrations.py. The iterdump() of its SQLite file, written by
-- tests/service/results/data/make_legacy_dumps.py pre-web-service (its docstring says how to
-- write it again); do not edit by hand.
BEGIN TRANSACTION;
CREATE TABLE sweeps (
	sweep_id VARCHAR(128) NOT NULL, 
	name VARCHAR(256) NOT NULL, 
	status VARCHAR(32) NOT NULL, 
	spec JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (sweep_id)
);
INSERT INTO "sweeps" VALUES('grid-9a0f3b7c','grid','completed','{"name": "grid", "preset": "tiny", "grid": {"L": [1.0]}, "seeds": [0, 1], "evaluation": "retrain"}','2026-11-20 09:15:30.000000','2026-11-20 09:52:30.000000');
CREATE TABLE trials (
	sweep_id VARCHAR(128) NOT NULL, 
	trial_id VARCHAR(256) NOT NULL, 
	swept JSON NOT NULL, 
	status TEXT NOT NULL, 
	val_loss FLOAT, 
	ood_loss FLOAT, 
	adv_loss FLOAT, 
	nop_loss FLOAT, 
	flops_loss FLOAT, 
	mgda_weights TEXT, 
	test_error FLOAT, 
	params_m FLOAT, 
	flops_m FLOAT, 
	pgd_acc FLOAT, 
	ood_aupr FLOAT, 
	latency_ms FLOAT, 
	evaluation TEXT, 
	genotype TEXT, 
	genotype_hash TEXT, 
	search_seconds FLOAT, 
	eval_seconds FLOAT, 
	device TEXT, 
	versions TEXT, 
	PRIMARY KEY (sweep_id, trial_id), 
	FOREIGN KEY(sweep_id) REFERENCES sweeps (sweep_id) ON DELETE CASCADE
);
INSERT INTO "trials" VALUES('grid-9a0f3b7c','0000','{"L": 1.0, "seed": 0}','completed',6.93147180559945286226e-01,0.25,1.5,0.125,0.0625,'[0.4, 0.3, 0.1, 0.1, 0.1]',2.76,3.349342,528.1,38.25,88.0,5.0,'retrain','{"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2]], "normal_concat": [2, 3, 4, 5], "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1], ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]], "reduce_concat": [2, 3, 4, 5]}','be4a32607156494b',123.456789,3600.0,'cpu','{"e2rnas-sweeps": "0.1.0", "ray": "2.60.0", "torch": "2.14.1", "torchvision": "0.29.1"}');
INSERT INTO "trials" VALUES('grid-9a0f3b7c','0001','{"L": 1.0, "seed": 1}','failed',NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,'none',NULL,NULL,NULL,NULL,NULL,'{"e2rnas-sweeps": "0.1.0", "ray": "2.60.0", "torch": "2.14.1", "torchvision": "0.29.1"}');
COMMIT;

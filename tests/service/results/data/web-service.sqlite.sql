-- A database as the e2rnas-sweeps store of commit f553fe5 wrote it: the last store before
-- Alembic (tables from create_all, the web service's columns of sweeps added by hand). Upgraded
-- by tests/service/results/test_migrations.py. The iterdump() of its SQLite file, written by
-- tests/service/results/data/make_legacy_dumps.py web-service (its docstring says how to write
-- it again); do not edit by hand.
BEGIN TRANSACTION;
CREATE TABLE sweeps (
	sweep_id VARCHAR(128) NOT NULL, 
	name VARCHAR(256) NOT NULL, 
	status VARCHAR(32) NOT NULL, 
	spec JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	job_id VARCHAR(128), 
	run_dir TEXT, 
	progress JSON, 
	message TEXT, 
	PRIMARY KEY (sweep_id)
);
INSERT INTO "sweeps" VALUES('quickstart-5d41402a','quickstart','cancelled','{"name": "quickstart", "preset": "tiny", "grid": {"L": [1.0, 2.5], "F": [100.0, 400.0]}, "seeds": [0], "evaluation": "proxy"}','2026-11-20 09:15:30.000000','2026-11-20 09:48:30.000000','raysubmit_8kq3Z1vN2cXpTt5M','/srv/e2rnas/storage/runs/quickstart-5d41402a','{"total": 3, "pending": 0, "running": 0, "done": 2, "failed": 1}','cancelled by request');
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
INSERT INTO "trials" VALUES('quickstart-5d41402a','0000','{"F": 100.0, "L": 1.0, "no_ood": false, "seed": 0}','completed',6.93147180559945286226e-01,0.25,1.5,0.125,0.0625,'[0.4, 0.3, 0.1, 0.1, 0.1]',1.23456789012345673488e+01,3.349342,528.1,40.0,90.5,4.5,'proxy','{"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2]], "normal_concat": [2, 3, 4, 5], "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1], ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]], "reduce_concat": [2, 3, 4, 5]}','be4a32607156494b',123.456789,45.0,'cpu','{"e2rnas-sweeps": "0.1.0", "ray": "2.60.0", "torch": "2.14.1", "torchvision": "0.29.1"}');
INSERT INTO "trials" VALUES('quickstart-5d41402a','0001','{"F": 100.0, "L": 2.5, "no_ood": false, "seed": 0}','failed',NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,'none',NULL,NULL,NULL,NULL,NULL,'{"e2rnas-sweeps": "0.1.0", "ray": "2.60.0", "torch": "2.14.1", "torchvision": "0.29.1"}');
INSERT INTO "trials" VALUES('quickstart-5d41402a','0002','{"F": 400.0, "L": 1.0, "backbone": "darts", "no_ood": true, "seed": 0}','completed',3.00000000000000044408e-01,0.25,1.5,0.125,0.0625,'[0.4, 0.3, 0.1, 0.1, 0.1]',NULL,3.349342,528.1,NULL,NULL,NULL,'none','{"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2]], "normal_concat": [2, 3, 4, 5], "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1], ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]], "reduce_concat": [2, 3, 4, 5]}','be4a32607156494b',123.456789,NULL,'cpu','{"e2rnas-sweeps": "0.1.0", "ray": "2.60.0", "torch": "2.14.1", "torchvision": "0.29.1"}');
COMMIT;

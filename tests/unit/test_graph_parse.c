/*
 * test_graph_parse.c - driveItem and drive JSON as the real services send
 * them (shapes from graph-notes.md §2.4, §13), and bodies they should not.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "graph.h"
#include "item.h"
#include "unit.h"

static int parse(const char *json, struct drive_item *it)
{
	return graph_parse_item(json, strlen(json), it);
}

static void test_business_file(void)
{
	const char *json =
		"{\"@odata.context\":\"https://graph.microsoft.com/v1.0/$metadata#drives('b%21x')/items/$entity\","
		"\"@microsoft.graph.downloadUrl\":\"https://contoso-my.sharepoint.com/_layouts/15/download.aspx?UniqueId=1&tempauth=t\","
		"\"id\":\"01BYE5RZ2KXWOTNNU3B5B2M4WTY5X7RZ3S\",\"name\":\"report.pdf\","
		"\"eTag\":\"\\\"{A4A5DD5B},3\\\"\",\"cTag\":\"\\\"c:{A4A5DD5B},2\\\"\",\"size\":48213,"
		"\"createdDateTime\":\"2024-05-01T10:00:00Z\",\"lastModifiedDateTime\":\"2024-05-02T11:30:12Z\","
		"\"parentReference\":{\"driveType\":\"business\",\"driveId\":\"b!x\",\"id\":\"01BYE5RZPARENT\","
		"\"path\":\"/drives/b!x/root:/Folder\"},"
		"\"file\":{\"mimeType\":\"application/pdf\",\"hashes\":{\"quickXorHash\":\"q2Wc0+=\"}},"
		"\"fileSystemInfo\":{\"createdDateTime\":\"2024-04-01T09:00:00Z\","
		"\"lastModifiedDateTime\":\"2024-04-02T08:00:01Z\"}}";
	struct drive_item it;

	CHECK_INT(parse(json, &it), 0);
	CHECK_STR(it.id, "01BYE5RZ2KXWOTNNU3B5B2M4WTY5X7RZ3S");
	CHECK_STR(it.name, "report.pdf");
	CHECK_STR(it.parent_id, "01BYE5RZPARENT");
	CHECK_INT(it.is_dir, 0);
	CHECK_INT(it.is_root, 0);
	CHECK_INT(it.is_package, 0);
	CHECK_INT(it.is_deleted, 0);
	CHECK_INT(it.size, 48213);
	CHECK_STR(it.etag, "\"{A4A5DD5B},3\"");
	CHECK_STR(it.ctag, "\"c:{A4A5DD5B},2\"");
	CHECK_STR(it.qxhash, "q2Wc0+=");
	CHECK(it.download_url && strstr(it.download_url, "tempauth=t"));
	/* fileSystemInfo (client times) win over the service times */
	CHECK_INT(it.mtime.tv_sec, 1712044801);   /* 2024-04-02T08:00:01Z */
	CHECK_INT(it.ctime_created.tv_sec, 1711962000);
	CHECK_INT(it.mtime.tv_nsec, 0);
	drive_item_release(&it);
	CHECK(it.id == NULL && it.name == NULL && it.size == 0);
}

static void test_business_folder(void)
{
	const char *json =
		"{\"id\":\"01FOLDER\",\"name\":\"Folder\",\"eTag\":\"\\\"{X},1\\\"\",\"size\":-4096,"
		"\"createdDateTime\":\"2024-05-01T10:00:00Z\",\"lastModifiedDateTime\":\"2024-05-02T11:30:12Z\","
		"\"parentReference\":{\"driveId\":\"b!x\",\"id\":\"01ROOT\"},\"folder\":{\"childCount\":4}}";
	struct drive_item it;

	CHECK_INT(parse(json, &it), 0);
	CHECK_INT(it.is_dir, 1);
	CHECK(it.ctag == NULL);        /* Business folders have no cTag */
	CHECK(it.qxhash == NULL);
	CHECK(it.download_url == NULL);
	CHECK_INT(it.size, 0);         /* negative size clamped */
	/* no fileSystemInfo: service times */
	CHECK_INT(it.mtime.tv_sec, 1714649412);  /* 2024-05-02T11:30:12Z */
	drive_item_release(&it);
}

static void test_personal_root(void)
{
	const char *json =
		"{\"id\":\"7DDA670C5E7F91DF!sea8cc6beffdb43d7976fbc7da445c639\",\"name\":\"root\","
		"\"eTag\":\"\\\"{937A68FD},337\\\"\",\"size\":493382267257,\"root\":{},"
		"\"folder\":{\"childCount\":1,\"view\":{\"sortBy\":\"name\"}},"
		"\"parentReference\":{\"driveType\":\"personal\",\"driveId\":\"7DDA670C5E7F91DF\"},"
		"\"fileSystemInfo\":{\"createdDateTime\":\"2025-02-05T16:14:51Z\","
		"\"lastModifiedDateTime\":\"2025-02-19T19:04:58Z\"}}";
	struct drive_item it;

	CHECK_INT(parse(json, &it), 0);
	CHECK_STR(it.id, "7DDA670C5E7F91DF!sea8cc6beffdb43d7976fbc7da445c639");
	CHECK_INT(it.is_root, 1);
	CHECK_INT(it.is_dir, 1);
	CHECK(it.parent_id == NULL);
	CHECK_INT(it.size, 493382267257LL);
	drive_item_release(&it);

	/* A root without a name or folder facet is still a folder. */
	CHECK_INT(parse("{\"id\":\"r\",\"root\":{}}", &it), 0);
	CHECK_INT(it.is_dir, 1);
	CHECK(it.name == NULL);
	drive_item_release(&it);
}

static void test_deleted_and_package(void)
{
	struct drive_item it;

	/* Business delta delete: id and deleted facet only. */
	CHECK_INT(parse("{\"id\":\"01GONE\",\"deleted\":{\"state\":\"deleted\"}}", &it), 0);
	CHECK_INT(it.is_deleted, 1);
	CHECK_STR(it.id, "01GONE");
	CHECK(it.name == NULL);
	drive_item_release(&it);

	CHECK_INT(parse("{\"id\":\"NB1\",\"name\":\"Notebook\",\"size\":10,"
			"\"package\":{\"type\":\"oneNote\"},\"parentReference\":{\"id\":\"P\"}}", &it), 0);
	CHECK_INT(it.is_package, 1);
	CHECK_INT(it.is_dir, 0);
	drive_item_release(&it);
}

static void test_remote_item(void)
{
	struct drive_item it;

	/* Shortcut with facets only on remoteItem: a folder addressed on the owner's drive. */
	CHECK_INT(parse("{\"id\":\"OUTER\",\"name\":\"Shared\",\"parentReference\":{\"id\":\"P\"},"
			"\"remoteItem\":{\"id\":\"REMOTE\",\"size\":99,\"folder\":{\"childCount\":2},"
			"\"parentReference\":{\"driveId\":\"d2\"}}}", &it), 0);
	CHECK_STR(it.id, "remote:d2:REMOTE");
	CHECK_STR(it.parent_id, "P");
	CHECK_INT(it.is_dir, 1);
	CHECK_INT(it.size, 99);
	drive_item_release(&it);
}

static void test_missing_and_wrong_types(void)
{
	static const char *bad[] = {
		"",
		"{",
		"[]",
		"\"id\"",
		"null",
		"{}",
		"{\"name\":\"x\"}",                         /* no id */
		"{\"id\":\"\",\"name\":\"x\"}",             /* empty id */
		"{\"id\":\"a\"}",                           /* no name, not root/deleted */
		"{\"id\":42,\"name\":\"x\"}",
		"{\"id\":\"a\",\"name\":42}",
		"{\"id\":\"a\",\"name\":null}",
		"{\"id\":\"a\",\"name\":\"\"}",
		"{\"id\":\"a\",\"name\":\"a/b\"}",
		"{\"id\":\"a\",\"name\":\"..\"}",
		"{\"id\":\"a\",\"name\":\".\"}",
		"{\"id\":\"a\",\"name\":\"x\\u0000y\"}",    /* NUL in a string */
		"{\"id\":\"a\",\"name\":\"x\"",             /* truncated */
	};
	struct drive_item it;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i], &it) != -EIO)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		CHECK_INT(parse(bad[i], &it), -EIO);
		CHECK(it.id == NULL && it.name == NULL);
	}

	/* Wrong types on optional fields are ignored, not fatal. */
	CHECK_INT(parse("{\"id\":\"a\",\"name\":\"x\",\"size\":\"big\",\"eTag\":7,\"cTag\":null,"
			"\"parentReference\":\"P\",\"file\":{\"hashes\":[]},\"folder\":true,"
			"\"fileSystemInfo\":[],\"lastModifiedDateTime\":12,"
			"\"@microsoft.graph.downloadUrl\":{}}", &it), 0);
	CHECK_INT(it.size, 0);
	CHECK(it.etag == NULL && it.ctag == NULL && it.parent_id == NULL);
	CHECK(it.qxhash == NULL && it.download_url == NULL);
	CHECK_INT(it.is_dir, 0);
	CHECK_INT(it.mtime.tv_sec, 0);
	drive_item_release(&it);

	/* Real-valued size is accepted. */
	CHECK_INT(parse("{\"id\":\"a\",\"name\":\"x\",\"size\":1024.0}", &it), 0);
	CHECK_INT(it.size, 1024);
	drive_item_release(&it);

	/* Only the given length is read. */
	CHECK_INT(graph_parse_item("{\"id\":\"a\",\"name\":\"x\"}trailing", 21, &it), 0);
	drive_item_release(&it);
}

static void test_times(void)
{
	struct timespec ts;
	struct drive_item it;

	CHECK_INT(graph_parse_time("1970-01-01T00:00:00Z", &ts), 0);
	CHECK_INT(ts.tv_sec, 0);
	CHECK_INT(graph_parse_time("2024-01-02T03:04:05Z", &ts), 0);
	CHECK_INT(ts.tv_sec, 1704164645);
	CHECK_INT(ts.tv_nsec, 0);
	CHECK_INT(graph_parse_time("2017-09-14T12:34:53.912Z", &ts), 0);
	CHECK_INT(ts.tv_sec, 1505392493);
	CHECK_INT(ts.tv_nsec, 912000000);
	CHECK_INT(graph_parse_time("2017-09-14T12:34:53.1234567Z", &ts), 0);
	CHECK_INT(ts.tv_nsec, 123456700);
	CHECK_INT(graph_parse_time("2017-09-14T12:34:53.1234567891234Z", &ts), 0);
	CHECK_INT(ts.tv_nsec, 123456789);
	CHECK_INT(graph_parse_time("2024-01-02T03:04:05+00:00", &ts), 0);
	CHECK_INT(ts.tv_sec, 1704164645);
	CHECK_INT(graph_parse_time("2024-01-02T05:04:05+02:00", &ts), 0);
	CHECK_INT(ts.tv_sec, 1704164645);
	CHECK_INT(graph_parse_time("2024-02-29T00:00:00Z", &ts), 0);   /* leap year */
	CHECK_INT(graph_parse_time("2000-02-29T00:00:00Z", &ts), 0);

	static const char *bad[] = {
		"", "2024", "2024-01-02", "2024-01-02T03:04:05", "2024-01-02 03:04:05Z",
		"2024-13-01T00:00:00Z", "2024-00-01T00:00:00Z", "2024-01-32T00:00:00Z",
		"2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2024-04-31T00:00:00Z",
		"2024-01-02T24:00:00Z", "2024-01-02T23:60:00Z", "2024-01-02T23:59:61Z",
		"2024-01-02T03:04:05.Z", "2024-01-02T03:04:05Zjunk", "2024-01-02T03:04:05+0000",
		"2024-01-02T03:04:05+24:00", "24-01-02T03:04:05Z", "2024-1-02T03:04:05Z",
		"abcd-ef-ghTij:kl:mnZ", "2024-01-02T03:04:-5Z",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (graph_parse_time(bad[i], &ts) != -EINVAL)
			fprintf(stderr, "accepted time: %s\n", bad[i]);
		CHECK_INT(graph_parse_time(bad[i], &ts), -EINVAL);
	}
	CHECK_INT(graph_parse_time(NULL, &ts), -EINVAL);

	/* An invalid fileSystemInfo time falls back to the service time. */
	CHECK_INT(parse("{\"id\":\"a\",\"name\":\"x\",\"lastModifiedDateTime\":\"2024-01-02T03:04:05Z\","
			"\"fileSystemInfo\":{\"lastModifiedDateTime\":\"yesterday\"}}", &it), 0);
	CHECK_INT(it.mtime.tv_sec, 1704164645);
	drive_item_release(&it);
	/* Fractional seconds survive into the item. */
	CHECK_INT(parse("{\"id\":\"a\",\"name\":\"x\",\"fileSystemInfo\":"
			"{\"lastModifiedDateTime\":\"2017-09-14T12:34:53.5Z\"}}", &it), 0);
	CHECK_INT(it.mtime.tv_sec, 1505392493);
	CHECK_INT(it.mtime.tv_nsec, 500000000);
	drive_item_release(&it);
}

static void test_copy(void)
{
	struct drive_item a, b;

	CHECK_INT(parse("{\"id\":\"a\",\"name\":\"x\",\"size\":5,\"eTag\":\"e\","
			"\"parentReference\":{\"id\":\"p\"}}", &a), 0);
	CHECK_INT(drive_item_copy(&b, &a), 0);
	CHECK_STR(b.id, "a");
	CHECK_STR(b.parent_id, "p");
	CHECK(b.id != a.id);
	CHECK(b.ctag == NULL);
	CHECK_INT(b.size, 5);
	drive_item_release(&a);
	CHECK_STR(b.etag, "e");
	drive_item_release(&b);
}

static void test_drive(void)
{
	const char *json =
		"{\"id\":\"b!t18F8ybsHUq1z3LTz8xvZqP8zaSWjkFNhsME-Fepo75dTf9vQKfeRblBZjoSQrd7\","
		"\"driveType\":\"business\",\"name\":\"OneDrive\",\"description\":\"\","
		"\"owner\":{\"user\":{\"id\":\"efee\",\"displayName\":\"Ryan Gregg\"}},"
		"\"quota\":{\"total\":1099511627776,\"used\":64424,\"remaining\":1099447353539,"
		"\"deleted\":256938,\"state\":\"normal\",\"fileCount\":2}}";
	struct drive_info d;

	CHECK_INT(graph_parse_drive(json, strlen(json), &d), 0);
	CHECK_STR(d.id, "b!t18F8ybsHUq1z3LTz8xvZqP8zaSWjkFNhsME-Fepo75dTf9vQKfeRblBZjoSQrd7");
	CHECK_STR(d.drive_type, "business");
	CHECK_STR(d.name, "OneDrive");
	CHECK_INT(d.quota.total, 1099511627776LL);
	CHECK_INT(d.quota.used, 64424);
	CHECK_INT(d.quota.remaining, 1099447353539LL);
	CHECK_INT(d.quota.deleted, 256938);
	drive_info_release(&d);
	CHECK(d.id == NULL);

	/* No quota (or all zero): unknown, zeros. */
	CHECK_INT(graph_parse_drive("{\"id\":\"7DDA670C5E7F91DF\",\"driveType\":\"personal\"}", 48, &d), 0);
	CHECK_INT(d.quota.total, 0);
	CHECK(d.name == NULL);
	drive_info_release(&d);

	CHECK_INT(graph_parse_drive("{\"id\":\"x\",\"quota\":{\"total\":\"lots\",\"used\":-5}}", 45, &d), 0);
	CHECK_INT(d.quota.total, 0);
	CHECK_INT(d.quota.used, 0);
	drive_info_release(&d);

	CHECK_INT(graph_parse_drive("{\"driveType\":\"personal\"}", 24, &d), -EIO);
	CHECK_INT(graph_parse_drive("{\"id\":5}", 8, &d), -EIO);
	CHECK_INT(graph_parse_drive("[]", 2, &d), -EIO);
	CHECK_INT(graph_parse_drive("{\"id\":\"x\"", 9, &d), -EIO);
	CHECK(d.id == NULL);
}

int main(void)
{
	RUN(test_business_file);
	RUN(test_business_folder);
	RUN(test_personal_root);
	RUN(test_deleted_and_package);
	RUN(test_remote_item);
	RUN(test_missing_and_wrong_types);
	RUN(test_times);
	RUN(test_copy);
	RUN(test_drive);
	return unit_report("graph_parse");
}
